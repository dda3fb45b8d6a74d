# Capture: what the module examines and what it leaves alone, against real
# nginx proxying to a harness upstream, with a callback receiver.
#
# - The client always gets the upstream's bytes and headers unchanged (plain,
#   chunked, gzip, deflate, proxy_buffering off with a slow upstream, a body
#   spooled to a temporary file; also nginx's own gzip for the client), and
#   each of these delivers a callback with the right field values.
# - JSON content types with parameters and suffixes are examined.
# - Responses that give no event, and the capture counter each one moves:
#   HEAD, 204, 304, subrequest, non-JSON type, malformed JSON, broken gzip,
#   an empty body, over postback_buffer_size (Content-Length, chunked, after
#   gzip decoding; the exact size is still examined, for 1k and the default
#   64k), an encoding the module does not decode, the upstream or the client
#   closing mid-body, a document without the event field.
# - Valid but unusual JSON (an integer over 64 bits, an escaped NUL) is
#   examined like any other document.
# - JSONPath forms and how values render as text (post_json "fields" and
#   GET params), a field from a request variable.
# - $postback_event and $postback_<field> in access_log.

use strict;
use warnings;

use Compress::Zlib ();
use Encode qw(encode_utf8);
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use PBTest qw(url);

# Bodies on the wire are UTF-8 bytes.
my $JSON = JSON::PP->new->utf8->canonical;

my $t = PBTest->new;

# ---------------------------------------------------------------- documents

# The upstream and the test build the same bodies from the same arguments,
# so the test knows every byte the upstream sent.
sub doc {
    my (%a) = @_;
    my $tx = $a{tx} // 'none';
    my $d = {
        data  => { purchase => { transaction => $tx, status => 'APPROVED' } },
        items => [ map { { sku => "SKU-$tx-$_", name => "item $_ " . ('x' x 60) } }
                   1 .. ($a{items} // 3) ],
        'weird key' => "w-$tx",
        'dq key'    => { x => "dq-$tx" },
        vals  => {
            num     => 1234,
            real    => 19.99,
            yes     => JSON::PP::true,
            no      => JSON::PP::false,
            nothing => undef,
            obj     => { k => 'v', n => [ 1, 2 ] },
            arr     => [ 1, 'two', undef ],
            str     => 'a b&c=d',
            uni     => "caf\x{e9} \"q\" \\ \x{2713}",
        },
    };
    # noev=1: a document without the field the event comes from
    $d->{event} = $a{ev} // 'SALE' unless $a{noev};
    return $JSON->encode($d);
}

# A document of exactly $len bytes (for the postback_buffer_size boundary).
sub sized_doc {
    my ($tx, $len) = @_;
    my $head = qq({"event":"SALE","data":{"purchase":{"transaction":"$tx"}},"pad":");
    my $pad = $len - length($head) - 2;
    die "document of $len bytes is too short\n" if $pad < 0;
    return $head . ('p' x $pad) . '"}';
}

# Valid JSON documents written by hand (the upstream sends them as they are).
my %RAW = (
    # an integer beyond 64 bits, as some platforms' order numbers are
    bigint => '{"event":"SALE","data":{"purchase":{"transaction":"T-bigint"}},'
            . '"order":12345678901234567890}',
    # an escaped NUL inside a string
    nul    => '{"event":"SALE","data":{"purchase":{"transaction":"T-nul"}},'
            . '"note":"a\u0000b"}',
    empty  => '',
);

sub body_for {
    my ($a) = @_;
    return $RAW{ $a->{raw} } if defined $a->{raw};
    return sized_doc($a->{tx}, $a->{len}) if $a->{len};
    return doc(%$a);
}


my @JSON_TYPE = ('Content-Type' => 'application/json', 'X-Upstream' => 'kept');

# Upstream answers by the last path segment; arguments shape the document.
my %MODE = (
    plain    => sub { { body => body_for($_[0]) } },
    chunked  => sub { { body => body_for($_[0]), chunked => 1, chunk_size => 500 } },
    gzip     => sub { { body => body_for($_[0]), gzip => 1 } },
    # the compressed bytes in pieces of 100, 20 ms apart
    gzip_pieces => sub {
        { body => body_for($_[0]), gzip => 1, body_delay => 0.02, chunk_size => 100 } },
    gzip_chunked => sub {
        { body => body_for($_[0]), gzip => 1, chunked => 1, chunk_size => 100 } },
    # HTTP's "deflate" is the zlib format
    deflate => sub {
        { body => Compress::Zlib::compress(body_for($_[0])),
          headers => [ @JSON_TYPE, 'Content-Encoding' => 'deflate' ] } },
    # several writes 50 ms apart, so nginx reads the body in pieces
    pieces   => sub { { body => body_for($_[0]), body_delay => 0.05, chunk_size => 1000 } },
    pieces_chunked => sub {
        { body => body_for($_[0]), chunked => 1, body_delay => 0.05, chunk_size => 1000 } },
    nocontent => sub { { status => 204 } },
    etag => sub {
        my ($a, $req) = @_;
        return { status => 304, headers => [ ETag => '"v1"' ] }
            if ($req->{headers}{'if-none-match'} // '') eq '"v1"';
        return { body => body_for($a), headers => [ @JSON_TYPE, ETag => '"v1"' ] };
    },
    ctype => sub {
        my ($a) = @_;
        return { body => body_for($a), headers => [ 'Content-Type' => $a->{type} ] };
    },
    malformed => sub { { body => '{"event":"SALE","data":{"purchase":' } },
    badgzip   => sub {
        { body => 'this is not gzip data at all',
          headers => [ @JSON_TYPE, 'Content-Encoding' => 'gzip' ] } },
    br => sub {
        { body => "\x1b\x10\x00\xf8\xa5\x40\xc2\x42\x21\x00",
          headers => [ @JSON_TYPE, 'Content-Encoding' => 'br' ] } },
    truncated => sub { { body => body_for($_[0]), close_after => 100 } },
    truncated_chunked => sub {
        { body => body_for($_[0]), chunked => 1, chunk_size => 300, close_after => 700 } },
);

$t->upstream(app => sub {
    my ($req) = @_;
    my ($mode) = $req->{path} =~ m{([^/]+)$};
    my $make = $MODE{ $mode // '' } or return { status => 404, body => "no mode $req->{path}" };
    my $resp = $make->($req->{args}, $req);
    $resp->{headers} //= [@JSON_TYPE];
    return $resp;
});
$t->receiver('hook');
# Callbacks of large documents go to their own receiver: each poll of a
# receiver decodes all its records, large ones are slow to decode.
$t->receiver('big');

# ---------------------------------------------------------------- nginx

$t->nginx_conf($t->module_conf(<<"EOF"));
    postback_zone pb:1m;

    postback_field kind        \$.event;
    postback_field transaction \$.data.purchase.transaction;
    postback_field first_sku   \$.items[0].sku;
    postback_field weird       "\$['weird key']";
    postback_field dq          '\$["dq key"].x';
    postback_field num         \$.vals.num;
    postback_field real        \$.vals.real;
    postback_field yes         \$.vals.yes;
    postback_field no          \$.vals.no;
    postback_field nothing     \$.vals.nothing;
    postback_field obj         \$.vals.obj;
    postback_field arr         \$.vals.arr;
    postback_field arr1        \$.vals.arr[1];
    postback_field str         \$.vals.str;
    postback_field uni         \$.vals.uni;
    postback_field missing     \$.vals.not_there;
    postback_field click       \$arg_click_id;

    postback_event \$postback_kind;

    postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/hook events=*;

    log_format pb '\$request_uri event=[\$postback_event] tx=[\$postback_transaction]';

    upstream app {
        server 127.0.0.1:%%PORT_app%%;
        keepalive 4;
    }

    server {
        listen 127.0.0.1:%%PORT_front%%;
        access_log %%DIR%%/postback.log pb;

        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /cap/ {
            postback on;
            proxy_pass http://app;
        }

        location /small/ {
            postback on;
            postback_buffer_size 1k;
            proxy_pass http://app;
        }

        location /big/ {
            postback on;
            proxy_pass http://app;
            postback_callback big url=http://127.0.0.1:%%PORT_big%%/big events=*;
        }

        # nginx compresses for the client after the module has read the body
        location /ngzip/ {
            postback on;
            gzip on;
            gzip_types application/json;
            gzip_min_length 1;
            proxy_pass http://app;
        }

        location /unbuf/ {
            postback on;
            proxy_buffering off;
            proxy_pass http://app;
        }

        # Tiny buffers and a rate-limited client connection: once the two
        # 1k buffers are full and the client write is delayed, nginx spools
        # the rest of the upstream body to a temporary file.
        location /spool/ {
            postback on;
            postback_buffer_size 64k;
            proxy_buffers 2 1k;
            proxy_buffer_size 1k;
            proxy_busy_buffers_size 1k;
            proxy_max_temp_file_size 1m;
            proxy_temp_file_write_size 1k;
            limit_rate_after 1k;
            limit_rate 200k;
            proxy_pass http://app;
            postback_callback spool url=http://127.0.0.1:%%PORT_big%%/big events=*;
        }

        # The main request is not examined here; its auth_request subrequest
        # runs in a location with postback on.
        location = /authed {
            auth_request /pb-auth;
            proxy_pass http://app/cap/plain?tx=T-authed-main;
        }
        location = /pb-auth {
            internal;
            postback on;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://app/cap/plain?tx=T-auth-sub;
        }

        location /jp/ {
            postback on;
            proxy_pass http://app;
            postback_callback jp_json url=http://127.0.0.1:%%PORT_hook%%/jp events=*;
            postback_callback jp_get url=http://127.0.0.1:%%PORT_hook%%/jp-get events=*
                method=get
                param=tx=\$postback_transaction
                param=first_sku=\$postback_first_sku
                param=weird=\$postback_weird
                param=dq=\$postback_dq
                param=num=\$postback_num
                param=real=\$postback_real
                param=yes=\$postback_yes
                param=no=\$postback_no
                param=nothing=\$postback_nothing
                param=obj=\$postback_obj
                param=arr=\$postback_arr
                param=arr1=\$postback_arr1
                param=str=\$postback_str
                param=uni=\$postback_uni
                param=missing=\$postback_missing
                param=click=\$postback_click;
        }

        location = /pbstatus {
            postback_status;
        }
    }
EOF
$t->start;

# ---------------------------------------------------------------- helpers

# Runs $code; returns its result and the capture counters that moved.
sub counted { $t->counted('/pbstatus', @_) }

# The transaction a receiver record is for (decoded once per record: the
# records of a receiver are read again at every poll).
my %TX_OF;
sub record_tx {
    my ($rec) = @_;
    return $rec->{args}{tx} // '' if $rec->{method} eq 'GET';
    return $TX_OF{"$rec->{path} $rec->{n}"} //= do {
        my $body = eval { $JSON->decode($rec->{body}) };
        $body ? $body->{fields}{transaction} // '' : '';
    };
}

# The record of receiver $opt{receiver} (default "hook") at $opt{path}
# (default "/<receiver>") for transaction $tx, waiting up to 5 s for it.
sub hook_for {
    my ($tx, %opt) = @_;
    my $receiver = $opt{receiver} // 'hook';
    my $path = $opt{path} // "/$receiver";
    my $deadline = time + ($opt{timeout} // 5);
    while (1) {
        my @found = grep { $_->{path} eq $path && record_tx($_) eq $tx }
                    @{ $t->received($receiver) };
        return $found[0] if @found || time > $deadline;
        sleep 0.05;
    }
}

sub fields_of {
    my ($rec) = @_;
    return {} unless $rec;
    return eval { $JSON->decode($rec->{body})->{fields} } // {};
}

# Transactions that were expected to deliver nothing.
my @silent;

# ---------------------------------------------------------------- tests

subtest 'responses with an event: client bytes unchanged, callback delivered' => sub {
    my @cases = (
        # name, path, query
        [ plain => '/cap/plain', { tx => 'T-plain' } ],
        [ chunked => '/cap/chunked', { tx => 'T-chunked', items => 40 } ],
        [ gzip => '/cap/gzip', { tx => 'T-gzip', items => 40 } ],
        [ 'proxy_buffering off, body in pieces' => '/unbuf/pieces',
          { tx => 'T-unbuf', items => 60 } ],
        [ 'proxy_buffering off, chunked in pieces' => '/unbuf/pieces_chunked',
          { tx => 'T-unbuf-chunked', items => 60 } ],
        [ 'gzip, chunked' => '/cap/gzip_chunked', { tx => 'T-gzip-chunked', items => 40 } ],
        [ 'proxy_buffering off, gzip in pieces' => '/unbuf/gzip_pieces',
          { tx => 'T-gzip-pieces', items => 40 } ],
        [ deflate => '/cap/deflate', { tx => 'T-deflate', items => 40 } ],
    );
    for my $case (@cases) {
        my ($name, $path, $args) = @$case;
        my $body = body_for($args);
        my ($r, $delta) = counted(sub { $t->get(url($path, %$args)) });
        is $r->{status}, 200, "$name: status";
        ok !$r->{error}, "$name: complete response" or diag $r->{error};
        # compressed bodies pass as the upstream sent them
        my ($enc) = $path =~ /(gzip|deflate)/;
        my $wire = !$enc            ? $body
                 : $enc eq 'gzip'   ? PBTest::gzip($body)
                 :                    Compress::Zlib::compress($body);
        ok $r->{body} eq $wire, "$name: client got the upstream's bytes"
            or diag "got " . length($r->{body}) . " bytes, want " . length $wire;
        is $r->{headers}{'content-encoding'}, $enc, "$name: Content-Encoding kept";
        if ($path =~ /chunked/) {
            is $r->{headers}{'transfer-encoding'}, 'chunked', "$name: still chunked";
        }
        else {
            is $r->{headers}{'content-length'}, length $wire, "$name: Content-Length kept";
        }
        is $r->{headers}{'x-upstream'}, 'kept', "$name: upstream header kept";
        is $r->{headers}{'content-type'}, 'application/json', "$name: Content-Type kept";
        is_deeply $delta, { examined => 1, events => 1 }, "$name: counters";

        my $rec = hook_for($args->{tx});
        ok $rec, "$name: callback delivered" or next;
        my $cb = $JSON->decode($rec->{body});
        is $cb->{event}, 'SALE', "$name: event";
        is $cb->{callback}, 'hook', "$name: callback name";
        is $cb->{fields}{first_sku}, "SKU-$args->{tx}-1", "$name: field from \$.items[0].sku";
        is $cb->{fields}{transaction}, $args->{tx}, "$name: field from deep in the document";
        is_deeply $cb->{data}, $JSON->decode($body), "$name: data is the upstream document";
        like $rec->{headers}{'webhook-id'}, qr/^msg_[0-9a-f]{24}$/, "$name: webhook-id";
    }
};

subtest "nginx's own gzip for the client" => sub {
    my $args = { tx => 'T-ngzip', items => 20 };
    my $body = body_for($args);
    my ($r, $delta) = counted(sub {
        $t->get(url('/ngzip/plain', %$args), headers => [ 'Accept-Encoding' => 'gzip' ]) });
    is $r->{headers}{'content-encoding'}, 'gzip', 'nginx compressed the response';
    ok Compress::Zlib::memGunzip($r->{body}) eq $body, 'which inflates to the upstream body';
    is_deeply $delta, { examined => 1, events => 1 }, 'counters';
    is fields_of(hook_for('T-ngzip'))->{first_sku}, 'SKU-T-ngzip-1', 'callback with the field';
};

subtest 'a body spooled to a temporary file is still examined' => sub {
    my $args = { tx => 'T-spool', items => 400 };    # about 40 KB
    my $body = body_for($args);
    cmp_ok length $body, '>', 30_000, 'body is large enough to spool';
    cmp_ok length $body, '<', 64 * 1024, '... and under postback_buffer_size';
    my $log_from = length $t->error_log;
    my ($r, $delta) = counted(sub { $t->get(url('/spool/plain', %$args)) });
    is $r->{status}, 200, 'status';
    ok $r->{body} eq $body, 'client got the upstream bytes'
        or diag "got " . length($r->{body}) . " bytes, want " . length $body;
    is $r->{headers}{'content-length'}, length $body, 'Content-Length kept';
    like substr($t->error_log, $log_from), qr/buffered to a temporary file/,
        'nginx did spool the body to a temporary file';
    is_deeply $delta, { examined => 1, events => 1 }, 'counters';
    my $rec = hook_for('T-spool', receiver => 'big');
    ok $rec, 'callback delivered';
    is fields_of($rec)->{first_sku}, 'SKU-T-spool-1', 'field from the start of the body';
    is fields_of($rec)->{weird}, 'w-T-spool', 'field from the end of the body';
};

subtest 'content types' => sub {
    # examined: JSON types with and without parameters
    for my $type ('application/json; charset=utf-8', 'text/json',
                  'application/problem+json', 'APPLICATION/JSON') {
        (my $tx = "T-type-$type") =~ s/\W/-/g;
        my ($r, $delta) = counted(sub { $t->get(url('/cap/ctype', tx => $tx, type => $type)) });
        is_deeply $delta, { examined => 1, events => 1 }, "$type: examined";
        ok hook_for($tx), "$type: delivered";
    }
    # not examined: valid JSON bodies sent with other types
    for my $type ('text/html', 'text/plain', 'application/jsonp', 'application/x-json') {
        (my $tx = "T-type-$type") =~ s/\W/-/g;
        push @silent, $tx;
        my ($r, $delta) = counted(sub { $t->get(url('/cap/ctype', tx => $tx, type => $type)) });
        is_deeply $delta, { examined => 1, not_json => 1 }, "$type: not_json";
        ok $r->{body} eq body_for({ tx => $tx }), "$type: body unchanged";
    }
};

subtest 'responses without an event, and their counter' => sub {
    my $plain = body_for({ tx => 'T-head' });
    push @silent, 'T-head';
    my ($r, $delta) = counted(sub { $t->request(HEAD => url('/cap/plain', tx => 'T-head')) });
    is $r->{status}, 200, 'HEAD: status';
    is $r->{headers}{'content-length'}, length $plain, 'HEAD: Content-Length kept';
    is $r->{body}, '', 'HEAD: no body';
    is_deeply $delta, { examined => 1, head => 1 }, 'HEAD: counted "head"';

    ($r, $delta) = counted(sub { $t->get('/cap/nocontent') });
    is $r->{status}, 204, '204: status';
    is_deeply $delta, { examined => 1, no_body => 1 }, '204: counted "no_body"';

    push @silent, 'T-etag';
    ($r, $delta) = counted(sub {
        $t->get(url('/cap/etag', tx => 'T-etag'), headers => [ 'If-None-Match' => '"v1"' ]) });
    is $r->{status}, 304, '304: status';
    is $r->{headers}{etag}, '"v1"', '304: ETag kept';
    is_deeply $delta, { examined => 1, no_body => 1 }, '304: counted "no_body"';

    push @silent, 'T-auth-sub', 'T-authed-main';
    ($r, $delta) = counted(sub { $t->get('/authed') });
    is $r->{status}, 200, 'subrequest: auth_request let the main request through';
    ok $r->{body} eq body_for({ tx => 'T-authed-main' }), 'subrequest: main body unchanged';
    is_deeply $delta, { examined => 1, subrequest => 1 }, 'subrequest: counted "subrequest"';

    ($r, $delta) = counted(sub { $t->get('/cap/malformed') });
    is $r->{body}, '{"event":"SALE","data":{"purchase":', 'malformed JSON: body unchanged';
    is_deeply $delta, { examined => 1, malformed => 1 }, 'malformed JSON: counted "malformed"';

    ($r, $delta) = counted(sub { $t->get('/cap/badgzip') });
    is $r->{body}, 'this is not gzip data at all', 'broken gzip: body unchanged';
    is $r->{headers}{'content-encoding'}, 'gzip', 'broken gzip: Content-Encoding kept';
    is_deeply $delta, { examined => 1, malformed => 1 }, 'broken gzip: counted "malformed"';

    ($r, $delta) = counted(sub { $t->get('/cap/br') });
    is $r->{body}, "\x1b\x10\x00\xf8\xa5\x40\xc2\x42\x21\x00", 'br: body unchanged';
    is $r->{headers}{'content-encoding'}, 'br', 'br: Content-Encoding kept';
    is_deeply $delta, { examined => 1, encoding => 1 }, 'br: counted "encoding"';

    push @silent, 'T-noev';
    ($r, $delta) = counted(sub { $t->get(url('/cap/plain', tx => 'T-noev', noev => 1)) });
    ok $r->{body} eq body_for({ tx => 'T-noev', noev => 1 }), 'no event field: body unchanged';
    is_deeply $delta, { examined => 1, no_event => 1 }, 'no event field: counted "no_event"';

    for my $path (qw(/cap/truncated /cap/truncated_chunked /unbuf/truncated)) {
        my ($mode) = $path =~ m{([^/]+)$};
        (my $name = $path) =~ s{^/}{};
        my $args = { tx => "T-$name", items => 20 };
        push @silent, $args->{tx};
        my $body = body_for($args);
        ($r, $delta) = counted(sub { $t->get(url($path, %$args)) });
        is $r->{status}, 200, "$name: status";
        like $r->{error} // '', qr/closed/, "$name: client sees the connection close";
        my $sent = $mode eq 'truncated' ? 100 : 700;    # the close_after of the mode
        ok $r->{body} eq substr($body, 0, $sent), "$name: client got the bytes sent"
            or diag "got " . length($r->{body}) . " bytes";
        is_deeply $delta, { examined => 1, truncated => 1 }, "$name: counted \"truncated\"";
    }
    # nginx logs the upstream's early close as an [error]; the harness fails
    # the test on [alert] or [crit], which must not appear.

    # The client going away mid-body: no last buffer either.
    my $args = { tx => 'T-client-gone', items => 60 };
    push @silent, $args->{tx};
    ($r, $delta) = counted(sub {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('front'))
            or die "connect: $!";
        print $sock "GET " . url('/unbuf/pieces', %$args) . " HTTP/1.1\r\nHost: x\r\n\r\n";
        sysread $sock, my $buf, 100;    # the header and a first piece at most
        close $sock;
    });
    is_deeply $delta, { examined => 1, truncated => 1 }, 'client gone: counted "truncated"';
};

subtest 'postback_buffer_size limits (1k)' => sub {
    my $limit = 1024;

    # exactly the limit: examined, with and without Content-Length, and gzip
    for my $mode (qw(plain chunked gzip)) {
        my $args = { tx => "T-exact-$mode", len => $limit };
        my ($r, $delta) = counted(sub { $t->get(url("/small/$mode", %$args)) });
        my $want = body_for($args);
        $want = PBTest::gzip($want) if $mode eq 'gzip';
        ok $r->{body} eq $want, "$mode, $limit bytes: body unchanged";
        is_deeply $delta, { examined => 1, events => 1 }, "$mode, $limit bytes: examined";
        ok hook_for($args->{tx}), "$mode, $limit bytes: delivered";
    }

    # one byte over, and much over
    for my $case ([ plain => $limit + 1 ], [ plain => 20_000 ],
                  [ chunked => $limit + 1 ], [ chunked => 20_000 ],
                  [ gzip => $limit + 1 ], [ gzip => 200_000 ]) {
        my ($mode, $len) = @$case;
        my $args = { tx => "T-over-$mode-$len", len => $len };
        push @silent, $args->{tx};
        my ($r, $delta) = counted(sub { $t->get(url("/small/$mode", %$args)) });
        my $want = body_for($args);
        if ($mode eq 'gzip') {
            $want = PBTest::gzip($want);
            cmp_ok length $want, '<', $limit, "gzip, $len bytes: compressed under the limit";
            is $r->{headers}{'content-length'}, length $want, "gzip, $len bytes: Content-Length kept";
        }
        elsif ($mode eq 'plain') {
            is $r->{headers}{'content-length'}, $len, "plain, $len bytes: Content-Length kept";
        }
        ok $r->{body} eq $want, "$mode, $len bytes: body unchanged";
        is_deeply $delta, { examined => 1, too_large => 1 }, "$mode, $len bytes: counted \"too_large\"";
    }
};

subtest 'default postback_buffer_size (64k)' => sub {
    my $limit = 64 * 1024;
    for my $mode (qw(plain chunked)) {
        my $args = { tx => "T-64k-$mode", len => $limit };
        my ($r, $delta) = counted(sub { $t->get(url("/big/$mode", %$args)) });
        ok $r->{body} eq body_for($args), "$mode, $limit bytes: body unchanged";
        is_deeply $delta, { examined => 1, events => 1 }, "$mode, $limit bytes: examined";
        ok hook_for($args->{tx}, receiver => 'big'), "$mode, $limit bytes: delivered";

        $args = { tx => "T-64k-over-$mode", len => $limit + 1 };
        push @silent, $args->{tx};
        ($r, $delta) = counted(sub { $t->get(url("/big/$mode", %$args)) });
        ok $r->{body} eq body_for($args), "$mode, $limit + 1 bytes: body unchanged";
        is_deeply $delta, { examined => 1, too_large => 1 },
            "$mode, $limit + 1 bytes: counted \"too_large\"";
    }
};

# Both documents are valid JSON (RFC 8259): their other fields are as usable
# as anywhere else, so they should give their event like any document.
subtest 'valid JSON that is unusual' => sub {
    for my $raw (qw(bigint nul)) {
        my ($r, $delta) = counted(sub { $t->get(url('/cap/plain', raw => $raw)) });
        ok $r->{body} eq $RAW{$raw}, "$raw: body unchanged";
        is_deeply $delta, { examined => 1, events => 1 }, "$raw: examined, with an event";
        # (no wait for a callback the counters say was not sent)
        ok $delta->{events} && hook_for("T-$raw"), "$raw: delivered";
    }
    # an empty 200 body is not JSON
    my ($r, $delta) = counted(sub { $t->get(url('/cap/plain', raw => 'empty')) });
    is $r->{status}, 200, 'empty body: status';
    is $r->{body}, '', 'empty body: nothing';
    is_deeply $delta, { examined => 1, malformed => 1 }, 'empty body: counted "malformed"';
};

subtest 'JSONPath forms and values as text' => sub {
    my $args = { tx => 'T-jp', click_id => 'clk-42' };
    my $r = $t->get(url('/jp/plain', %$args));
    ok $r->{body} eq body_for($args), 'body unchanged';

    my %want = (
        transaction => 'T-jp',                  # $.a.b.c
        first_sku   => 'SKU-T-jp-1',            # $.a[0].b
        weird       => 'w-T-jp',                # $['weird key']
        dq          => 'dq-T-jp',               # $["dq key"].x
        num         => '1234',
        real        => '19.99',
        yes         => 'true',
        no          => 'false',
        nothing     => '',                      # null
        obj         => '{"k":"v","n":[1,2]}',   # compact JSON
        arr         => '[1,"two",null]',
        arr1        => 'two',                   # $.a.b[1]
        str         => 'a b&c=d',
        uni         => "caf\x{e9} \"q\" \\ \x{2713}",
        missing     => '',                      # no such path
        click       => 'clk-42',                # $arg_click_id
    );

    my $json_rec = hook_for('T-jp', path => '/jp');
    ok $json_rec, 'post_json callback delivered';
    my $fields = fields_of($json_rec);
    for my $name (sort keys %want) {
        is $fields->{$name}, $want{$name}, "post_json fields.$name";
    }

    my $get_rec = hook_for('T-jp', path => '/jp-get');
    ok $get_rec, 'get callback delivered';
    is $get_rec->{method}, 'GET', 'method GET';
    $want{tx} = delete $want{transaction};    # param=tx=$postback_transaction
    for my $name (sort keys %want) {
        # the receiver records the parameters' bytes
        is $get_rec->{args}{$name}, encode_utf8($want{$name}), "GET param $name";
    }
    # (that the http-level "hook" did not fire in /jp/ is checked at the end)
};

subtest '$postback_* variables in access_log' => sub {
    my $read_log = sub {
        my ($uri) = @_;
        my $deadline = time + 3;
        while (1) {
            open my $fh, '<', $t->dir . '/postback.log' or die "postback.log: $!";
            my @lines = grep { index($_, "$uri ") == 0 } <$fh>;
            chomp @lines;
            return $lines[0] if @lines || time > $deadline;
            sleep 0.02;
        }
    };
    my $uri = url('/cap/plain', tx => 'T-log');
    $t->get($uri);
    is $read_log->($uri), "$uri event=[SALE] tx=[T-log]", 'event and field logged';
    ok hook_for('T-log'), 'delivered';

    $uri = url('/cap/ctype', tx => 'T-log-html', type => 'text/html');
    push @silent, 'T-log-html';
    $t->get($uri);
    like $read_log->($uri), qr/^\Q$uri\E event=\[-?\] tx=\[-\]$/,
        'not examined: no values';
};

subtest 'no callback for any response without an event' => sub {
    # A later request that does deliver, then one short wait: a callback
    # wrongly queued for an earlier response would have arrived by then.
    $t->get(url('/cap/plain', tx => 'T-marker'));
    ok hook_for('T-marker'), 'marker delivered';
    sleep 0.5;
    my %silent = map { $_ => 1 } @silent;
    my @wrong = grep { $silent{ record_tx($_) } }
                map { @{ $t->received($_) } } qw(hook big);
    is_deeply [ map { record_tx($_) } @wrong ], [], 'no callback for them';

    # /jp/ has callbacks of its own: they replace the http-level "hook"
    my @jp_on_hook = grep { $_->{path} eq '/hook' && record_tx($_) eq 'T-jp' }
                     @{ $t->received('hook') };
    is scalar @jp_on_hook, 0, 'http-level callback not used where a location has its own';
};

$t->stop;
done_testing;
