# Events: status updates wherever they pass, and once per change.
#
# - conf.d/postback.conf as it is: a payment provider posting a form-encoded
#   chargeback to /webhooks/provider/ (postback request) reaches "members"
#   once, its post_json "data" being the form as JSON; the client gets the
#   shop's answer unchanged and the shop the provider's bytes.
# - postback request: bodies spooled to a temporary file (in file only, or
#   over client_body_buffer_size), chunked bodies written by hand (also with
#   proxy_request_buffering off, sent in pieces), a JSON body, a body over
#   postback_buffer_size ("too_large"); PHP-style form keys read by the
#   JSONPath fields.
# - The upstream refusing a notification (500): no event, "not_accepted";
#   the resend it accepts gives its one event.
# - postback_key: a thank-you page reloaded 5 times sends once ("duplicate"
#   +4), a status change sends again; keyed webhook-ids are derived
#   ("msg_" + the first 12 bytes of SHA-256 over the length-prefixed
#   callback, key and event, as pb_sign.h says), the same on two nginx
#   instances with different zones; unkeyed (no postback_key, or an empty
#   key) deliveries get unique ids.  Status JSON (key, webhook_id, keys) and
#   Prometheus (postback_keys, skipped{duplicate,not_accepted}).
# - POST <status>/events: JSON and form bodies, ?event=, duplicate, no
#   callback, bad bodies, no event, GET, a foreign Origin, over the size.
# - Hostile forms through postback request: 33 (and 32) levels of nesting,
#   100,000 keys, 100,000 appends, invalid percent-encoding, a NUL in a key:
#   the client always gets the shop's answer promptly, malformed ones are
#   counted, nginx keeps answering, the error log stays clean.
# - The keys' state survives a reload.
# - method=post_form without param= sends the whole document as a form
#   with PHP-style keys; null and empty members left out.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use File::Find ();
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use PBTest qw(url eventually derived_id);
use PBSample;

my $JSON = JSON::PP->new->utf8->canonical;
my $FORM = 'application/x-www-form-urlencoded';
my $ID_RE = qr/^msg_[0-9a-f]{24}$/;

# ---------------------------------------------------------------- helpers

# The records of receiver $name of $t whose delivery is for transaction
# $tx (post_json: fields.transaction or fields.tx; get: args tx), each as
# [ record, decoded body or undef ].
sub for_tx {
    my ($t, $name, $tx) = @_;
    my @found;
    for my $rec (@{ $t->received($name) }) {
        if ($rec->{method} eq 'GET') {
            push @found, [ $rec, undef ] if ($rec->{args}{tx} // '') eq $tx;
            next;
        }
        my $body = eval { $JSON->decode($rec->{body}) } or next;
        my $f = $body->{fields} || {};
        push @found, [ $rec, $body ] if ($f->{transaction} // $f->{tx} // '') eq $tx;
    }
    return @found;
}

# Waits (up to $timeout s, 10) for $n deliveries of $tx at receiver $name.
sub wait_tx {
    my ($t, $name, $tx, $n, $timeout) = @_;
    my @found;
    eventually(sub { @found = for_tx($t, $name, $tx); @found >= $n }, $timeout // 10);
    return @found;
}

sub status_json {
    my ($t, $path) = @_;
    my $r = $t->get($path);
    die "status $path: " . ($r->{status} // $r->{error}) . "\n" unless ($r->{status} // 0) == 200;
    return $JSON->decode($r->{body});
}

# The value of a Prometheus series line ("name{labels}") at status $path.
sub metric {
    my ($t, $path, $series) = @_;
    my $text = $t->get("$path?format=prometheus")->{body} // '';
    my ($v) = $text =~ /^\Q$series\E (\S+)$/m;
    return $v;
}

# A request written by hand, in pieces $delay seconds apart; the response.
sub send_pieces {
    my ($t, $head, $pieces, $delay) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('front'))
        or die "connect: $!";
    my $start = time;
    PBTest::HTTP::write_all($sock, $head);
    for my $piece (@$pieces) {
        sleep $delay;
        PBTest::HTTP::write_all($sock, $piece);
    }
    my $res = {};
    eval { PBTest::HTTP->new($sock, timeout => 10)->read_response('POST', $res); 1 }
        or chomp($res->{error} = $@);
    close $sock;
    $res->{elapsed} = time - $start;
    return $res;
}

# A chunked encoding of $body in chunks of $size bytes.
sub chunked {
    my ($body, $size) = @_;
    my $out = '';
    for (my $i = 0; $i < length $body; $i += $size) {
        my $piece = substr $body, $i, $size;
        $out .= sprintf("%x\r\n", length $piece) . "$piece\r\n";
    }
    return "${out}0\r\n\r\n";
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar(<$fh>) // '';
}

# A provider's form for a transaction's status.
sub form {
    my ($status, $tx, @more) = @_;
    return join '&', "data[purchase][status]=$status",
        "data[purchase][transaction]=$tx", @more;
}

# ================================================================ instances

# --- the example: conf.d/postback.conf as it is
my $ex = PBTest->new;
PBSample::start_example($ex);

# --- the events instance: its own config
my $ev = PBTest->new;
my $shop_status = $ev->dir . '/shop.status';    # when present, the shop answers this status

# The shop: /buy/ answers a checkout document; the rest are notifications,
# answered "shop <status> <md5 of the body received>".
my $shop = sub {
    my ($req) = @_;
    if ($req->{path} =~ m{^/buy/}) {
        my $a = $req->{args};
        return { headers => [ 'Content-Type' => 'application/json' ],
                 body => $JSON->encode({ data => {
                     purchase => { status => $a->{status}, transaction => $a->{tx} },
                     product  => { id => 1234 } } }) };
    }
    my $code = 200;
    if (open my $fh, '<', $shop_status) { ($code) = <$fh> =~ /(\d+)/; }
    return { status => $code,
             headers => [ 'Content-Type' => 'text/plain', 'X-Shop' => 'kept' ],
             body => "shop $code " . md5_hex($req->{body} // '') };
};
$ev->upstream(shop => $shop);
$ev->upstream(bigshop => $shop);    # large bodies: records of their own
$ev->receiver('hook');
$ev->receiver('big');

$ev->nginx_conf($ev->module_conf(<<'EOF'));
    postback_zone events:16m;

    postback_field status      $.data.purchase.status;
    postback_field transaction $.data.purchase.transaction;
    postback_field product     $.data.product.id;
    postback_field code        $.venda.codigo;
    postback_field valor       $.comissoes[0].valor;
    postback_field last        $.last;

    postback_event $postback_status;
    postback_key   $postback_transaction;

    postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/hook
        events=APPROVED,REFUNDED,CHARGEBACK,EXPIRED,PAID;

    upstream shop {
        server 127.0.0.1:%%PORT_shop%%;
        keepalive 4;
    }

    server {
        listen 127.0.0.1:%%PORT_front%%;

        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /notify/ {
            proxy_pass http://shop;
            postback request;
        }

        location /spooled/ {
            proxy_pass http://shop;
            postback request;
            client_body_buffer_size 1k;
            client_body_in_file_only on;
        }

        location /overflow/ {
            proxy_pass http://shop;
            postback request;
            client_body_buffer_size 1k;
        }

        location /unbuffered/ {
            proxy_pass http://shop;
            proxy_request_buffering off;
            postback request;
        }

        location /buy/ {
            proxy_pass http://shop;
            postback on;
        }

        location /hostile/ {
            proxy_pass http://127.0.0.1:%%PORT_bigshop%%;
            postback request;
            postback_buffer_size 4m;
            client_max_body_size 8m;
            postback_callback big url=http://127.0.0.1:%%PORT_big%%/big events=*
                method=get param=tx=$postback_transaction
                param=status=$postback_status param=last=$postback_last;
        }

        location /status/ {
            postback_status;
        }
    }
EOF
$ev->start;

sub ev_counted { $ev->counted('/status/', @_) }

# A notification POSTed to the events instance; the shop's expected answer.
sub notify {
    my ($path, $body, %opt) = @_;
    return $ev->post($path, $body,
        headers => [ 'Content-Type' => $opt{type} // $FORM ],
        timeout => $opt{timeout} // 10);
}

sub shop_answer {
    my ($r, $body, $code, $name) = @_;
    $code //= 200;
    is $r->{status}, $code, "$name: client got the shop's status";
    is $r->{body}, "shop $code " . md5_hex($body),
        "$name: client got the shop's answer, the shop got the bytes sent";
    is $r->{headers}{'x-shop'}, 'kept', "$name: shop's header kept";
}

# ================================================================ tests

subtest '1. conf.d: a provider posts a form-encoded chargeback' => sub {
    my $body = 'data%5Bpurchase%5D%5Bstatus%5D=CHARGEBACK'
             . '&data[purchase][transaction]=T1&data[product][id]=1234';
    my $r = $ex->post('/webhooks/provider/hotpay', $body,
                      headers => [ 'Content-Type' => $FORM ]);
    is $r->{status}, 200, 'client: the checkout service answered 200';
    ok !$r->{error}, 'client: complete answer' or diag $r->{error};
    is $r->{headers}{'content-type'}, 'application/json; charset=utf-8',
        "client: the service's Content-Type";
    is $r->{headers}{'content-length'}, length $r->{body}, 'client: Content-Length kept';
    # The sample service's answer, but for its per-connection id and
    # transaction (pid and serial of the connection's process).
    my $want = PBSample::checkout({ args => {} })->{body};
    my $mask = sub {
        (my $s = shift) =~ s/"id":"evt_\d+_\d+"/"id":"ID"/;
        $s =~ s/"transaction":"HP\d+"/"transaction":"TX"/;
        $s;
    };
    is $mask->($r->{body}), $mask->($want), "client: the service's bytes, unchanged";

    my ($up) = grep { $_->{path} eq '/webhooks/provider/hotpay' } @{ $ex->received('checkout') };
    is $up && $up->{body}, $body, "the service got the provider's bytes";
    is $up && $up->{headers}{'content-type'}, $FORM, '... and its Content-Type';

    my $members = $ex->wait_received(members => 1);
    $ex->wait_received(members => 2, 0.5);    # a second would be a bug
    is scalar @{ $ex->received('members') }, 1, 'members: one delivery';
    is scalar @{ $ex->received('tracker') }, 0,
        "tracker: nothing (the service's APPROVED answer is not examined)";

    my $rec = $members->[0];
    my $cb = $JSON->decode($rec->{body});
    is $cb->{event}, 'CHARGEBACK', 'event CHARGEBACK';
    is $cb->{callback}, 'members', 'callback members';
    is $cb->{fields}{status}, 'CHARGEBACK', 'fields.status';
    is $cb->{fields}{transaction}, 'T1', 'fields.transaction';
    is $cb->{fields}{product}, '1234', 'fields.product (a string, from a form)';
    is $cb->{fields}{click}, '', 'fields.click (no click_id)';
    is_deeply $cb->{data},
        { data => { purchase => { status => 'CHARGEBACK', transaction => 'T1' },
                    product => { id => '1234' } } },
        'data: the form as a JSON document';
    like $rec->{body}, qr/"data":\{"data":\{"purchase":\{"status":"CHARGEBACK","transaction":"T1"\},"product":\{"id":"1234"\}\}\}/,
        "data: written in the form's order, values as strings";
    is $rec->{headers}{'x-members-product'}, '1234', 'header from the product field';
    like $rec->{headers}{'webhook-signature'}, qr/^v1,/, 'signed';
    is $rec->{headers}{'webhook-id'}, derived_id('members', 'T1', 'CHARGEBACK'),
        'webhook-id derived from callback, key and event';
    is $cb->{id}, $rec->{headers}{'webhook-id'}, "body id is the webhook-id";

    my $st = status_json($ex, '/postback/');
    my ($d) = grep { $_->{callback} eq 'members' } @{ $st->{deliveries} };
    is $d->{key}, 'T1', 'status: delivery key';
    is $d->{webhook_id}, $rec->{headers}{'webhook-id'}, 'status: delivery webhook_id';
    isnt $d->{id}, $d->{webhook_id}, "status: its id is the ledger's own";
    is $st->{zone}{keys}, 1, 'zone: one key';
};

subtest '2. request bodies: spooled to a file, chunked, JSON, too large' => sub {
    my $log_from = length $ev->error_log;

    # in file only: nginx writes the whole body to a temporary file, kept
    my $body = form('PAID', 'SP-1', 'data[product][id]=77', 'venda[codigo]=V1',
                    'comissoes[0][valor]=2.50');
    my ($r, $delta) = ev_counted(sub { notify('/spooled/n', $body) });
    shop_answer($r, $body, 200, 'in file only');
    is_deeply $delta, { examined => 1, events => 1 }, 'in file only: counters';
    my @files;
    File::Find::find(sub { push @files, $File::Find::name if -f }, $ev->dir . '/client_body_temp');
    my @with_body = grep { slurp($_) eq $body } @files;
    is scalar @with_body, 1, 'in file only: the body was in a temporary file';
    my ($hook) = wait_tx($ev, 'hook', 'SP-1', 1);
    my $cb = $hook && $hook->[1];
    is $cb && $cb->{event}, 'PAID', 'in file only: event';
    is_deeply $cb && $cb->{fields},
        { status => 'PAID', transaction => 'SP-1', product => '77', code => 'V1',
          valor => '2.50', last => '' },
        'in file only: fields, PHP-style keys nested';
    is_deeply $cb && $cb->{data},
        { data => { purchase => { status => 'PAID', transaction => 'SP-1' },
                    product => { id => '77' } },
          venda => { codigo => 'V1' }, comissoes => [ { valor => '2.50' } ] },
        'in file only: data is the form as JSON';

    # over client_body_buffer_size: the rest goes to a temporary file
    $log_from = length $ev->error_log;
    $body = form('PAID', 'SP-2', 'pad=' . ('p' x 20_000), 'last=end-of-SP-2');
    ($r, $delta) = ev_counted(sub { notify('/overflow/n', $body) });
    shop_answer($r, $body, 200, 'over the buffer');
    is_deeply $delta, { examined => 1, events => 1 }, 'over the buffer: counters';
    like substr($ev->error_log, $log_from), qr/client request body is buffered to a temporary file/,
        'over the buffer: nginx did buffer the body to a temporary file';
    ($hook) = wait_tx($ev, 'hook', 'SP-2', 1);
    is $hook && $hook->[1]{fields}{last}, 'end-of-SP-2', 'over the buffer: field from the end';

    # chunked, written by hand
    $body = form('PAID', 'CH-1', 'venda[codigo]=V2', 'last=end-of-CH-1');
    ($r, $delta) = ev_counted(sub {
        $ev->post('/notify/c', chunked($body, 7),
                  headers => [ 'Content-Type' => $FORM, 'Transfer-Encoding' => 'chunked' ]) });
    shop_answer($r, $body, 200, 'chunked');
    is_deeply $delta, { examined => 1, events => 1 }, 'chunked: counters';
    ($hook) = wait_tx($ev, 'hook', 'CH-1', 1);
    is $hook && $hook->[1]{fields}{code}, 'V2', 'chunked: field';
    is $hook && $hook->[1]{fields}{last}, 'end-of-CH-1', 'chunked: field from the end';

    # chunked, and in file only
    $body = form('PAID', 'CH-2', 'last=end-of-CH-2');
    ($r, $delta) = ev_counted(sub {
        $ev->post('/spooled/c', chunked($body, 5),
                  headers => [ 'Content-Type' => $FORM, 'Transfer-Encoding' => 'chunked' ]) });
    shop_answer($r, $body, 200, 'chunked, in file only');
    is_deeply $delta, { examined => 1, events => 1 }, 'chunked, in file only: counters';
    ($hook) = wait_tx($ev, 'hook', 'CH-2', 1);
    is $hook && $hook->[1]{fields}{last}, 'end-of-CH-2', 'chunked, in file only: field';

    # chunked, in pieces 50 ms apart, proxy_request_buffering off
    $body = form('PAID', 'CH-3', 'pad=' . ('q' x 3000), 'last=end-of-CH-3');
    my $wire = chunked($body, 1000);
    my @pieces = map { substr $wire, $_ * 800, 800 } 0 .. int((length($wire) - 1) / 800);
    my $head = "POST /unbuffered/p HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             . "Content-Type: $FORM\r\nTransfer-Encoding: chunked\r\n\r\n";
    ($r, $delta) = ev_counted(sub { send_pieces($ev, $head, \@pieces, 0.05) });
    shop_answer($r, $body, 200, 'unbuffered, chunked in pieces');
    is_deeply $delta, { examined => 1, events => 1 }, 'unbuffered, chunked in pieces: counters';
    ($hook) = wait_tx($ev, 'hook', 'CH-3', 1);
    is $hook && $hook->[1]{fields}{last}, 'end-of-CH-3', 'unbuffered, chunked in pieces: field';

    # a JSON notification
    my $doc = { data => { purchase => { status => 'PAID', transaction => 'JS-1' },
                          product => { id => 5 } }, last => 'json' };
    $body = $JSON->encode($doc);
    ($r, $delta) = ev_counted(sub { notify('/notify/j', $body, type => 'application/json') });
    shop_answer($r, $body, 200, 'JSON');
    is_deeply $delta, { examined => 1, events => 1 }, 'JSON: counters';
    ($hook) = wait_tx($ev, 'hook', 'JS-1', 1);
    is $hook && $hook->[1]{fields}{product}, '5', 'JSON: field';
    is_deeply $hook && $hook->[1]{data}, $doc, 'JSON: data is the document';

    # over postback_buffer_size (64k): counted, the shop still gets it all
    $body = form('PAID', 'BIG-1', 'pad=' . ('b' x (64 * 1024)));
    ($r, $delta) = ev_counted(sub { notify('/notify/big', $body) });
    shop_answer($r, $body, 200, 'over postback_buffer_size');
    is_deeply $delta, { examined => 1, too_large => 1 }, 'over postback_buffer_size: too_large';

    $ev->wait_received(hook => 7, 0.5);
    is scalar(for_tx($ev, 'hook', 'BIG-1')), 0, 'over postback_buffer_size: nothing sent';
    is scalar @{ $ev->received('hook') }, 6, 'six deliveries in all';
};

subtest '3. the shop refuses a notification (500), then accepts its resend' => sub {
    my $body = form('REFUNDED', 'RS-1');
    my $before = metric($ev, '/status/', 'postback_responses_skipped_total{reason="not_accepted"}');
    $ev->write_file('shop.status', "500\n");
    my $log_from = length $ev->error_log;
    my ($r, $delta) = ev_counted(sub { notify('/notify/refund', $body) });
    shop_answer($r, $body, 500, 'refused');
    is_deeply $delta, { examined => 1, not_accepted => 1 }, 'refused: counted not_accepted';
    like substr($ev->error_log, $log_from), qr/notification answered 500, not examined/,
        'refused: logged';
    is metric($ev, '/status/', 'postback_responses_skipped_total{reason="not_accepted"}'),
        $before + 1, 'Prometheus: not_accepted +1';
    is status_json($ev, '/status/?limit=0')->{capture}{skipped}{not_accepted}, $before + 1,
        'status JSON: capture.skipped.not_accepted';

    unlink $shop_status or die "unlink: $!";
    ($r, $delta) = ev_counted(sub { notify('/notify/refund', $body) });
    shop_answer($r, $body, 200, 'resent');
    is_deeply $delta, { examined => 1, events => 1 }, 'resent: one event';
    my @got = wait_tx($ev, 'hook', 'RS-1', 1);
    $ev->wait_received(hook => scalar(@{ $ev->received('hook') }) + 1, 0.5);
    @got = for_tx($ev, 'hook', 'RS-1');
    is scalar @got, 1, 'one delivery, of the accepted one';
    is $got[0] && $got[0][1]{event}, 'REFUNDED', '... REFUNDED';
};

subtest '4. a thank-you page reloaded 5 times, then a status change' => sub {
    my $c0 = $ev->capture_counters('/status/');
    my $keys0 = status_json($ev, '/status/?limit=0')->{zone}{keys};
    my @deltas;
    for my $i (1 .. 5) {
        my ($r, $delta) = ev_counted(sub { $ev->get(url('/buy/thanks', status => 'APPROVED', tx => 'TY-1')) });
        is $r->{status}, 200, "GET $i: 200";
        push @deltas, $delta;
    }
    is_deeply \@deltas, [ { examined => 1, events => 1 }, map { { examined => 1, duplicate => 1 } } 2 .. 5 ],
        'one event, then four duplicates';
    my $c1 = $ev->capture_counters('/status/');
    is $c1->{duplicate} - $c0->{duplicate}, 4, 'duplicate counter +4';
    is $c1->{events} - $c0->{events}, 1, 'events counter +1';

    my @got = wait_tx($ev, 'hook', 'TY-1', 1);
    $ev->wait_received(hook => scalar(@{ $ev->received('hook') }) + 1, 0.5);
    @got = for_tx($ev, 'hook', 'TY-1');
    is scalar @got, 1, 'exactly one delivery';

    my ($r, $delta) = ev_counted(sub { $ev->get(url('/buy/thanks', status => 'REFUNDED', tx => 'TY-1')) });
    is_deeply $delta, { examined => 1, events => 1 }, 'REFUNDED: an event';
    @got = wait_tx($ev, 'hook', 'TY-1', 2);
    is scalar @got, 2, 'two deliveries in all';
    my @ids = map { $_->[0]{headers}{'webhook-id'} } @got;
    is_deeply [ map { $_->[1]{event} } @got ], [qw(APPROVED REFUNDED)], 'APPROVED, then REFUNDED';
    like $ids[$_], $ID_RE, "webhook-id $_: msg_ + 24 lowercase hex" for 0, 1;
    isnt $ids[0], $ids[1], 'different webhook-ids';
    is $ids[0], derived_id('hook', 'TY-1', 'APPROVED'), 'APPROVED: derived id';
    is $ids[1], derived_id('hook', 'TY-1', 'REFUNDED'), 'REFUNDED: derived id';
    is $got[$_][1]{id}, $ids[$_], "body id $_ is the webhook-id" for 0, 1;

    my $st = status_json($ev, '/status/?event=REFUNDED');
    my ($d) = grep { ($_->{key} // '') eq 'TY-1' } @{ $st->{deliveries} };
    is $d && $d->{webhook_id}, $ids[1], 'status: webhook_id of the delivery';
    is $d && $d->{key}, 'TY-1', 'status: key';
    isnt $d && $d->{id}, $ids[1], "status: id is the ledger's own";
    is $st->{zone}{keys}, $keys0 + 1, 'zone: one key more';
    is $st->{zone}{keys_evicted}, 0, 'zone: none evicted';
    my $page = $ev->get('/status/?format=prometheus')->{body};
    like $page, qr/^postback_keys $st->{zone}{keys}$/m, 'Prometheus: postback_keys';
    like $page, qr/^postback_keys_evicted_total 0$/m, 'Prometheus: postback_keys_evicted_total';
    like $page, qr/^postback_responses_skipped_total\{reason="duplicate"\} $c1->{duplicate}$/m,
        'Prometheus: skipped{duplicate}';
};

subtest '5. two nginx instances: the same update, the same webhook-id' => sub {
    my $members = PBTest->new;    # owns the receiver both deliver to
    $members->receiver('members');
    my $port = $members->port('members');

    my $conf = sub {
        my ($t, $zone, $keyed) = @_;
        my $key = $keyed ? 'postback_key $postback_tx;' : '';
        return $t->module_conf(<<"EOF");
    postback_zone $zone;
    postback_field status \$.status;
    postback_field tx     \$.tx;
    postback_event \$postback_status;
    $key
    postback_callback members url=http://127.0.0.1:$port/hook events=*;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
        }
        location /doc/ {
            default_type application/json;
            return 200 '{"status":"\$arg_status","tx":"\$arg_tx"}';
        }
        location /status/ {
            postback_status;
        }
    }
EOF
    };
    my %node;
    for ([ one => 'alpha:1m', 1 ], [ two => 'beta:2m', 1 ], [ unkeyed => 'gamma:1m', 0 ]) {
        my ($name, $zone, $keyed) = @$_;
        my $t = $node{$name} = PBTest->new;
        $t->nginx_conf($conf->($t, $zone, $keyed));
        $t->start;
    }

    # the same update through both keyed nodes
    for my $name (qw(one two)) {
        is $node{$name}->get(url('/buy/x', status => 'APPROVED', tx => 'NODE-1'))->{status},
            200, "node $name answered";
    }
    my @got = wait_tx($members, 'members', 'NODE-1', 2);
    is scalar @got, 2, 'two deliveries, one per node';
    my @ids = map { $_->[0]{headers}{'webhook-id'} } @got;
    like $ids[0], $ID_RE, 'webhook-id: msg_ + 24 lowercase hex';
    is $ids[0], $ids[1], 'the same webhook-id on both';
    is $ids[0], derived_id('members', 'NODE-1', 'APPROVED'), '... derived';
    for my $name (qw(one two)) {
        my ($d) = @{ status_json($node{$name}, '/status/')->{deliveries} };
        is $d && $d->{webhook_id}, $ids[0], "node $name: status webhook_id";
    }
    # each node's zone alone decides: a repeat on node one is a duplicate there
    my ($r, $delta) = $node{one}->counted('/status/', sub {
        $node{one}->get(url('/buy/x', status => 'APPROVED', tx => 'NODE-1')) });
    is_deeply $delta, { examined => 1, duplicate => 1 }, 'node one: a repeat is a duplicate';

    # no postback_key: the same document twice, two deliveries, two ids
    for (1 .. 2) {
        ($r, $delta) = $node{unkeyed}->counted('/status/', sub {
            $node{unkeyed}->get(url('/buy/x', status => 'APPROVED', tx => 'NOKEY-1')) });
        is_deeply $delta, { examined => 1, events => 1 }, "no postback_key, send $_: an event";
    }
    @got = wait_tx($members, 'members', 'NOKEY-1', 2);
    @ids = map { $_->[0]{headers}{'webhook-id'} } @got;
    is scalar @ids, 2, 'no postback_key: two deliveries';
    like $_, $ID_RE, 'no postback_key: webhook-id format' for @ids;
    isnt $ids[0], $ids[1], 'no postback_key: different ids';
    my ($d) = @{ status_json($node{unkeyed}, '/status/')->{deliveries} };
    is $d->{key}, undef, 'no postback_key: status key null';
    is $d->{webhook_id}, $d->{id}, 'no postback_key: webhook_id is its id';

    # a key that is empty (no transaction in the document): the same
    for (1 .. 2) {
        ($r, $delta) = $node{one}->counted('/status/', sub {
            $node{one}->get(url('/buy/x', status => 'EMPTYKEY', tx => '')) });
        is_deeply $delta, { examined => 1, events => 1 }, "empty key, send $_: an event";
    }
    my @empty;
    eventually(sub {
        @empty = grep { $JSON->decode($_->{body})->{event} eq 'EMPTYKEY' }
                 @{ $members->received('members') };
        @empty >= 2;
    });
    @ids = map { $_->{headers}{'webhook-id'} } @empty;
    is scalar @ids, 2, 'empty key: two deliveries';
    like $_, $ID_RE, 'empty key: webhook-id format' for @ids;
    isnt $ids[0], $ids[1], 'empty key: different ids';
    isnt $ids[0], derived_id('members', '', 'EMPTYKEY'), 'empty key: not derived';
    ($d) = @{ status_json($node{one}, '/status/?event=EMPTYKEY')->{deliveries} };
    is $d->{key}, undef, 'empty key: status key null';

    $node{$_}->stop for qw(one two unkeyed);
    $members->stop;
};

subtest '6. POST <status>/events' => sub {
    my $api = sub {
        my ($method, $path, %opt) = @_;
        my $r = $ev->request($method, "/status/events$path", %opt);
        $r->{json} = eval { $JSON->decode($r->{body}) };
        return $r;
    };
    my $doc = $JSON->encode({ data => { purchase => { status => 'PAID', transaction => 'EV-1' },
                                        product => { id => 9 } } });

    my $r = $api->(POST => '', body => $doc, headers => [ 'Content-Type' => 'application/json' ]);
    is $r->{status}, 202, 'JSON body: 202';
    like $r->{headers}{'content-type'}, qr{^application/json}, '... JSON answer';
    my $a = $r->{json} // {};
    is $a->{event}, 'PAID', '... event';
    is $a->{key}, 'EV-1', '... key';
    ok defined $a->{duplicate} && !$a->{duplicate}, '... duplicate false';
    is scalar @{ $a->{deliveries} // [] }, 1, '... one delivery';
    my $id = $a->{deliveries}[0] // 'none';
    like $id, $ID_RE, '... its id';

    my $d = eval { $JSON->decode($ev->get("/status/deliveries/$id")->{body}) } // {};
    is $d->{id}, $id, 'GET deliveries/ID: it';
    is $d->{callback}, 'hook', '... callback hook';
    is $d->{event}, 'PAID', '... event';
    is $d->{key}, 'EV-1', '... key';
    is $d->{webhook_id}, derived_id('hook', 'EV-1', 'PAID'), '... webhook_id derived';
    isnt $d->{webhook_id}, $id, "... id is the ledger's own";
    ok((grep { $_ eq "webhook-id: $d->{webhook_id}" }
        @{ $d->{request}{headers} // [] }),
       '... the request as sent shows the derived webhook-id')
        or diag explain $d->{request}{headers};
    my ($hook) = wait_tx($ev, 'hook', 'EV-1', 1);
    is $hook && $hook->[0]{headers}{'webhook-id'}, $d->{webhook_id}, 'the receiver got it under webhook_id';
    is_deeply $hook && $hook->[1]{data}, $JSON->decode($doc), '... the document as data';
    is $hook && $hook->[1]{fields}{product}, '9', '... fields';

    # the same again, no Content-Type
    $r = $api->(POST => '', body => $doc);
    is $r->{status}, 200, 'the same again: 200';
    is_deeply $r->{json}, { event => 'PAID', key => 'EV-1', duplicate => JSON::PP::true, deliveries => [] },
        '... duplicate true, no delivery';

    # a form, its event given
    my $form = form('WAITING', 'EV-2', 'venda[codigo]=V9');
    $r = $api->(POST => '?event=EXPIRED', body => $form, headers => [ 'Content-Type' => $FORM ]);
    is $r->{status}, 202, 'form with ?event=EXPIRED: 202';
    is $r->{json}{event}, 'EXPIRED', '... event EXPIRED';
    is $r->{json}{key}, 'EV-2', '... key from the form';
    is scalar @{ $r->{json}{deliveries} // [] }, 1, '... one delivery';
    ($hook) = wait_tx($ev, 'hook', 'EV-2', 1);
    is $hook && $hook->[1]{event}, 'EXPIRED', 'the receiver got EXPIRED';
    is $hook && $hook->[1]{fields}{status}, 'WAITING', '... the form status as field';
    is $hook && $hook->[1]{fields}{code}, 'V9', '... a nested form field';

    # an event no callback takes
    $r = $api->(POST => '?event=BILLET_PRINTED',
                body => $JSON->encode({ data => { purchase => { transaction => 'EV-3' } } }),
                headers => [ 'Content-Type' => 'application/json' ]);
    is $r->{status}, 200, 'an event no callback takes: 200';
    is_deeply $r->{json}{deliveries}, [], '... no delivery';
    ok defined $r->{json}{duplicate} && !$r->{json}{duplicate}, '... not a duplicate';

    # refused
    $r = $api->(POST => '', body => '{"data":', headers => [ 'Content-Type' => 'application/json' ]);
    is $r->{status}, 400, 'bad JSON: 400';
    ok $r->{json} && defined $r->{json}{error}, '... {"error":...}';
    $r = $api->(POST => '', body => 'a=%zz&b=1', headers => [ 'Content-Type' => $FORM ]);
    is $r->{status}, 400, 'bad form: 400';
    $r = $api->(POST => '', body => $JSON->encode({ data => { purchase => { transaction => 'EV-4' } } }),
                headers => [ 'Content-Type' => 'application/json' ]);
    is $r->{status}, 400, 'no event: 400';
    ok $r->{json} && defined $r->{json}{error}, '... {"error":...}';
    $r = $api->(GET => '');
    is $r->{status}, 405, 'GET: 405';
    is $r->{headers}{allow}, 'POST', '... POST only';
    $r = $api->(POST => '?event=PAID', body => $doc,
                headers => [ 'Content-Type' => 'application/json', Origin => 'http://evil.example' ]);
    is $r->{status}, 403, 'a foreign Origin: 403';
    $r = $api->(POST => '', body => '{"pad":"' . ('x' x (64 * 1024)) . '"}',
                headers => [ 'Content-Type' => 'application/json' ]);
    is $r->{status}, 413, 'over postback_buffer_size: 413';

    $ev->wait_received(hook => scalar(@{ $ev->received('hook') }) + 1, 0.5);
    is scalar(for_tx($ev, 'hook', 'EV-1')), 1, 'EV-1: one delivery in all';
    is scalar(for_tx($ev, 'hook', 'EV-3')) + scalar(for_tx($ev, 'hook', 'EV-4')), 0,
        'nothing for the others';
};

subtest '7. hostile forms through postback request' => sub {
    my $log_from = length $ev->error_log;
    my @workers = $ev->worker_pids;
    my $ok = form('APPROVED', 'H-ok');
    my @cases = (
        [ '33 levels of nesting', 'malformed',
          form('APPROVED', 'H-33') . '&x' . join('', map { "[$_]" } 1 .. 33) . '=deep' ],
        [ '32 levels of nesting', 'events',
          form('APPROVED', 'H-32') . '&x' . join('', map { "[$_]" } 1 .. 32) . '=deep' ],
        [ '100,000 keys', 'events',
          join('&', map { "k$_=v$_" } 1 .. 100_000) . '&' . form('APPROVED', 'H-100k') . '&last=L100k' ],
        [ '100,000 appends', 'events',
          join('&', ('a[]=x') x 100_000) . '&' . form('APPROVED', 'H-append') . '&last=Lappend' ],
        [ 'invalid percent-encoding', 'malformed', form('APPROVED', 'H-pct', 'note=%zz') ],
        [ 'a % at the end', 'malformed', form('APPROVED', 'H-pct2', 'note=50%') ],
        [ 'a NUL in a key', 'malformed', form('APPROVED', 'H-nul', 'k%00=1') ],
    );
    for my $case (@cases) {
        my ($name, $outcome, $body) = @$case;
        my ($r, $delta) = ev_counted(sub { notify('/hostile/x', $body, timeout => 20) });
        ok !$r->{error}, "$name: complete answer" or diag $r->{error};
        is $r->{status}, 200, "$name: client got the shop's status";
        is $r->{body}, 'shop 200 ' . md5_hex($body), "$name: client got the shop's answer";
        cmp_ok $r->{elapsed}, '<', 3, "$name: promptly";
        note sprintf "%s: %d bytes, answered in %.3f s", $name, length $body, $r->{elapsed};
        is_deeply $delta, { examined => 1, $outcome => 1 }, "$name: counted $outcome";
    }
    for my $tx (qw(H-32 H-100k H-append)) {
        my ($got) = wait_tx($ev, 'big', $tx, 1);
        is $got && $got->[0]{args}{status}, 'APPROVED', "$tx: delivered";
    }
    my ($got) = for_tx($ev, 'big', 'H-100k');
    is $got && $got->[0]{args}{last}, 'L100k', 'H-100k: a field after 100,000 keys';
    ($got) = for_tx($ev, 'big', 'H-append');
    is $got && $got->[0]{args}{last}, 'Lappend', 'H-append: a field after 100,000 appends';

    my $log = substr $ev->error_log, $log_from;
    like $log, qr/request body is not a valid form: nesting too deep/, 'logged: nesting too deep';
    like $log, qr/request body is not a valid form: invalid percent-encoding/,
        'logged: invalid percent-encoding';

    unlike $log, qr/\[(?:alert|crit|emerg)\]|exited on signal/, 'no alert, crit or crash logged';
    is_deeply [ $ev->worker_pids ], \@workers, 'the same workers still run';

    $ev->wait_received(big => 4, 0.5);
    is scalar @{ $ev->received('big') }, 3, 'nothing for the malformed ones';
    is status_json($ev, '/status/?limit=0')->{zone}{name}, 'events', 'nginx still answers';
    my ($r) = notify('/hostile/x', $ok);
    is $r->{status}, 200, '... and still proxies';
    ok wait_tx($ev, 'big', 'H-ok', 1), '... and still delivers';
};

subtest '8. the keys survive a reload' => sub {
    my $body = form('CHARGEBACK', 'T1', 'data[product][id]=1234');
    my $keys = status_json($ex, '/postback/?limit=0')->{zone}{keys};
    $ex->reload;
    is status_json($ex, '/postback/?limit=0')->{zone}{keys}, $keys, 'zone keys kept';

    my ($r, $delta) = $ex->counted('/postback/', sub {
        $ex->post('/webhooks/provider/hotpay', $body, headers => [ 'Content-Type' => $FORM ]) });
    is $r->{status}, 200, 'the resent chargeback: answered';
    is_deeply $delta, { examined => 1, duplicate => 1 }, '... a duplicate after the reload';

    ($r, $delta) = $ex->counted('/postback/', sub {
        $ex->post('/webhooks/provider/hotpay', form('REFUNDED', 'T1', 'data[product][id]=1234'),
                  headers => [ 'Content-Type' => $FORM ]) });
    is_deeply $delta, { examined => 1, events => 1 }, 'a new status for T1: an event';
    my $members = $ex->wait_received(members => 2);
    $ex->wait_received(members => 3, 0.5);
    is_deeply [ map { $JSON->decode($_->{body})->{event} } @{ $ex->received('members') } ],
        [qw(CHARGEBACK REFUNDED)], 'members: the chargeback once, then the refund';
    is $members->[1]{headers}{'webhook-id'}, derived_id('members', 'T1', 'REFUNDED'),
        'the refund: derived webhook-id';
};

$ev->stop;
$ex->stop;
subtest '9. method=post_form without param=: the whole document' => sub {
    my $w = PBTest->new;
    $w->receiver('form');
    $w->nginx_conf($w->module_conf(<<'EOF', workers => 1));
    postback_zone pb:1m;
    postback_field status $.venda.status;
    postback_field tx     $.venda.codigo;
    postback_event $postback_status;
    postback_callback form url=http://127.0.0.1:%%PORT_form%%/f
        method=post_form;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
        }
        location /doc/ {
            default_type application/json;
            return 200 '{"venda":{"codigo":"V 1&2","status":"APPROVED","valor":19.9,"pago":true,"cupom":null},"comissoes":[{"nome":"ana"},{"nome":"bia","valor":2}],"vazio":[]}';
        }
    }
EOF
    $w->start;
    is $w->get('/buy/x')->{status}, 200, 'a checkout';
    my ($req) = @{ $w->wait_received(form => 1, 10) };
    is $req && $req->{headers}{'content-type'},
        'application/x-www-form-urlencoded', 'a form';
    my @pairs = map { my ($k, $v) = split /=/, $_, 2;
                      s/\+/ /g, s/%([0-9A-Fa-f]{2})/chr hex $1/ge for $k, $v;
                      "$k=$v" } split /&/, ($req && $req->{body}) // '';
    is_deeply \@pairs,
        [ 'venda[codigo]=V 1&2', 'venda[status]=APPROVED', 'venda[valor]=19.9',
          'venda[pago]=1', 'comissoes[0][nome]=ana', 'comissoes[1][nome]=bia',
          'comissoes[1][valor]=2' ],
        'PHP-style keys, the document in order; null and empty left out'
        or diag $req && $req->{body};
    $w->stop;
};

done_testing;
