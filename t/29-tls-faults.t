# Receiver faults over TLS.  https:// receivers at a literal address go
# through nginx's own connections (ngx_ssl; t/26-nginx-engine.t has the
# same faults over plain http); t/29-tls-faults-curl.t runs this file again
# with the receivers named localhost, through libcurl: the same cases, its
# own error texts.  The receivers are the harness's TLS servers, their
# certificate trusted with ca_file=.
#
# One worker.  Each fault, one attempt: the attempt's error (the nginx
# engine's below), the client answered at once (< 0.5 s), and a normal TLS
# delivery right after still delivered, no [alert], [crit] or crash in the
# error log:
# - a receiver that accepts TCP and never speaks (the handshake hangs):
#   "timed out after 500 ms" with timeout=500ms;
# - a plain-HTTP server at an https:// url (it answers the ClientHello
#   with a 400), and a server that rejects the handshake with an alert
#   nginx logs at [crit] ("unrecognized name", as nginx's
#   ssl_reject_handshake sends): "TLS handshake failed" with the TLS
#   layer's reason, no line of its own in the error log;
# - a receiver that closes once the handshake is done and the request
#   read, without answering: "empty reply";
# - garbage, a bad status line, an answer cut short (with close_notify,
#   and without: the TCP connection just closed): "bad answer: ..." with
#   the parser's reason;
# - an answer in plain text, not in TLS records: "recv() failed" with the
#   TLS layer's reason;
# - a receiver that never answers, endless chunks, an answer trickled
#   byte by byte: "timed out after 500 ms";
# - a reset (RST) mid-answer: as a close (nginx's TLS layer takes a
#   reset after the handshake for the end of the stream), "bad answer:
#   the connection closed before the body ended".
# Keep-alive over TLS:
# - sequential deliveries share one TLS connection;
# - a kept-alive connection the receiver closed while idle: the next
#   delivery goes on a new connection, delivered at its first attempt;
# - closed as the next request came: sent again on a new connection, once,
#   not counted as an attempt;
# - an answer followed by more bytes in the same TLS record, the answer
#   ending where the engine's read ends (the rest held by the TLS layer,
#   not in the socket): the connection is not used again.
# A graceful reload (to two workers) while a TLS delivery is in flight: the
# old worker finishes it, sent once.  Then 20 checkouts with two workers:
# each delivered exactly once.

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Test::More;

use PBTest qw(eventually);

# where the receivers are: an address, or a name (libcurl sends)
my $HOST = $ENV{PB_RECEIVER_HOST} // '127.0.0.1';
my $ENGINE = $HOST eq '127.0.0.1' ? 'nginx' : 'curl';

my $t = PBTest->new;
my $dir = $t->dir;
my $tls = $t->self_signed_cert;

my $ANSWER = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

# the nginx engine's read size (NGX_HTTP_POSTBACK_READ_SIZE): an answer of
# exactly this many bytes ends where a read ends
my $READ_SIZE = 4096;

# A whole answer of $READ_SIZE bytes (its Content-Length four digits), then
# more bytes in the same write, so in the same TLS record.
sub lying_answer {
    my $length = $READ_SIZE - length "HTTP/1.1 200 OK\r\nContent-Length: 0000\r\n\r\n";
    return "HTTP/1.1 200 OK\r\nContent-Length: $length\r\n\r\n"
         . ('x' x $length) . 'EXTRA';
}

# accepts TCP (the kernel does), never reads nor speaks
my $silent = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $t->port('silent'), Proto => 'tcp',
    Listen => 16, ReuseAddr => 1,
) or die "silent receiver: $!\n";

my %RECEIVER = (
    ok        => {},
    keep      => {},
    # after the handshake, reads the request and closes
    hangup    => { respond => sub { '' } },
    garbage   => { respond => sub { "garbage\r\n\r\n" } },
    badstatus => { respond => sub { "HTTP/1.1 20 OK\r\n\r\n" } },
    cut       => { respond => sub { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" } },
    cut_tcp   => { respond => sub {
        { raw => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close => 'tcp' }
    } },
    cleartext => { respond => sub { { raw => $ANSWER, no_tls => 1, close => 'tcp' } } },
    mute      => { delay => 30 },
    endless   => { respond => sub {
        { chunked => 1, chunk_size => 64, body_delay => 0.001, body => 'x' x 1_000_000 }
    } },
    trickle   => { respond => sub {
        { body => 'x' x 100, chunk_size => 1, body_delay => 0.05 }
    } },
    reset     => { respond => sub {
        { body => 'x' x 1000, close_after => 10, close => 'reset' }
    } },
    # answers keep-alive, then closes at once
    closer    => { respond => sub {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    } },
    # the second request, on the kept-alive connection, gets no answer
    drop      => { respond => sub { $_[1] == 2 ? '' : { body => 'ok' } } },
    liar      => { respond => sub { $_[1] == 1 ? { raw => lying_answer() } : { body => 'ok' } } },
    slowish   => { delay => 1.5 },
    mass      => {},
);
$t->receiver($_ => tls => $tls, %{ $RECEIVER{$_} }) for keys %RECEIVER;

# Faults of one attempt each, and the error expected from each engine.
my $TIMED_OUT = qr/^timed out after 500 ms$/;
my $CUT = qr/^bad answer: the connection closed before the body ended$/;
my %FAULT = (
    silent    => [ $TIMED_OUT, qr/^Connection timed out after 5\d\d milliseconds$/ ],
    plain     => [ qr/^TLS handshake failed: SSL_do_handshake\(\) failed .*wrong version number/,
                   qr/wrong version number/ ],
    reject    => [ qr/^TLS handshake failed: SSL_do_handshake\(\) failed .*unrecognized name/,
                   qr/unrecognized name/ ],
    hangup    => [ qr/^empty reply: the receiver closed the connection$/,
                   qr/^Empty reply from server$/ ],
    garbage   => [ qr/^bad answer: not an HTTP\/1\.x status line$/,
                   qr/^Received HTTP\/0\.9 when not allowed$/ ],
    badstatus => [ qr/^bad answer: a status that is not 3 digits$/,
                   qr/^Unsupported response code in HTTP response$/ ],
    cut       => [ $CUT, qr/^transfer closed with 7 bytes remaining to read$/ ],
    cut_tcp   => [ $CUT, qr/^transfer closed with 7 bytes remaining to read$/ ],
    cleartext => [ qr/^recv\(\) failed: SSL_read\(\) failed .*wrong version number/,
                   qr/wrong version number/ ],
    mute      => [ $TIMED_OUT, qr/^Operation timed out after 5\d\d milliseconds with 0 bytes/ ],
    endless   => [ $TIMED_OUT, qr/^Operation timed out after 5\d\d milliseconds/ ],
    trickle   => [ $TIMED_OUT, qr/^Operation timed out after 5\d\d milliseconds/ ],
    reset     => [ $CUT, qr/^Recv failure: Connection reset by peer$/ ],
);
my @FAULTS = sort keys %FAULT;

my $CA = "ca_file=$dir/cert.pem";
my %callbacks = (
    (map { $_ => "url=https://$HOST:%%PORT_$_%%/hook $CA attempts=1 timeout=500ms" }
        @FAULTS),
    map { $_ => "url=https://$HOST:%%PORT_$_%%/hook $CA" }
        qw(ok keep closer drop liar slowish mass),
);

sub conf {
    my ($workers) = @_;
    return $t->checkout_conf(workers => $workers,
        locations => $t->callback_locations(%callbacks),
        servers => <<"EOF");
    # plain http: the ClientHello gets a 400
    server {
        listen 127.0.0.1:%%PORT_plain%%;
        return 200;
    }

    # refuses every handshake: an "unrecognized name" alert
    server {
        listen 127.0.0.1:%%PORT_reject%% ssl;
        ssl_reject_handshake on;
    }
EOF
}

$t->nginx_conf(conf(1));
$t->start;

sub status { $t->status_json }
sub callback { $t->callback_status(@_) }
sub deliveries { $t->callback_deliveries(@_) }

sub finished {
    my ($cb) = @_;
    return ($cb->{delivered} // 0) + ($cb->{failed} // 0);
}

# a checkout at /$name/, answered at once
my %checkouts;
sub checkout {
    my ($name) = @_;
    my $tx = $name . ++$checkouts{$name};
    my $r = $t->get("/$name/x?status=APPROVED&tx=$tx");
    is $r->{status}, 200, "$name: checkout $tx answered";
    cmp_ok $r->{elapsed}, '<', 0.5, "$name: ... at once";
    return $tx;
}

# a checkout, then until its callback finished that many deliveries
sub deliver {
    my ($name) = @_;
    checkout($name);
    ok eventually(sub { finished(callback($name)) >= $checkouts{$name} }, 10),
        "$name: delivery $checkouts{$name} finished";
}

# The worker is fine: a normal TLS delivery goes through, and the error
# log since $from has no [alert], [crit] or crash.
sub still_fine {
    my ($from) = @_;
    deliver('ok');
    my @d = deliveries('ok');
    is $d[-1]{state}, 'delivered', 'a normal TLS delivery afterwards: delivered';
    my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal/ }
        split /\n/, substr $t->error_log, $from;
    ok !@bad, 'no alert, crit or crash in the error log' or diag join "\n", @bad;
}

subtest "the engine: $ENGINE for https://$HOST" => sub {
    my %engine = map { $_->{name} => $_->{engine} } @{ status()->{callbacks} };
    is_deeply [ @engine{ sort keys %callbacks } ], [ ($ENGINE) x keys %callbacks ],
        'every callback';
};

subtest 'faults, one attempt each' => sub {
    my $from = length $t->error_log;
    checkout($_) for @FAULTS;
    ok eventually(sub {
        my %cb = map { $_->{name} => $_ } @{ status()->{callbacks} };
        !grep { finished($cb{$_}) < 1 } @FAULTS;
    }, 10), 'all finished';
    for my $name (@FAULTS) {
        my ($d) = deliveries($name);
        my $a = $d->{attempts}[0] // {};
        is $d->{state}, 'failed', "$name: failed";
        is scalar @{ $d->{attempts} }, 1, "$name: one attempt";
        like $a->{error}, $FAULT{$name}[ $ENGINE eq 'curl' ], "$name: the error"
            or diag explain $a;
        cmp_ok $a->{duration_ms}, '<', 2000, "$name: in time";
    }
    for my $name (grep { $FAULT{$_}[0] eq $TIMED_OUT } @FAULTS) {
        cmp_ok +(deliveries($name))[0]{attempts}[0]{duration_ms}, '>=', 450,
            "$name: after about 500 ms";
    }
    my @one = grep { $RECEIVER{$_} } @FAULTS;
    is_deeply [ map { scalar @{ $t->received($_) } } @one ], [ (1) x @one ],
        'each receiver got one request';
    still_fine($from);
};

subtest 'sequential deliveries share a kept-alive TLS connection' => sub {
    deliver('keep') for 1 .. 3;
    my $recs = $t->received('keep');
    is_deeply [ map { [ $_->{conn}, $_->{conn_req} ] } @$recs ],
              [ [ 1, 1 ], [ 1, 2 ], [ 1, 3 ] ], 'three requests on one connection';
};

subtest 'a kept-alive TLS connection the receiver closed' => sub {
    deliver('closer') for 1 .. 3;
    my $recs = $t->received('closer');
    is_deeply [ map { $_->{conn} } @$recs ], [ 1, 2, 3 ], 'each on a new connection';
    is_deeply [ @{ callback('closer') }{qw(delivered failed attempts)} ], [ 3, 0, 3 ],
        'each delivered at its first attempt';
};

subtest 'a kept-alive TLS connection closed as the request came' => sub {
    deliver('drop') for 1 .. 2;
    my $recs = $t->received('drop');
    is_deeply [ map { [ $_->{conn}, $_->{conn_req} ] } @$recs ],
              [ [ 1, 1 ], [ 1, 2 ], [ 2, 1 ] ],
              'the second sent again on a new connection';
    is_deeply [ @{ callback('drop') }{qw(delivered failed attempts)} ], [ 2, 0, 2 ],
        'both delivered, one attempt each';
};

subtest 'more than the answer in its last TLS record' => sub {
    my $from = length $t->error_log;
    deliver('liar') for 1 .. 2;
    my @d = deliveries('liar');
    is_deeply [ map { $_->{state} } @d ], [qw(delivered delivered)], 'both delivered';
    is_deeply [ map { scalar @{ $_->{attempts} } } @d ], [ 1, 1 ], '... at their first attempt'
        or diag explain \@d;
    is_deeply [ map { $_->{conn} } @{ $t->received('liar') } ], [ 1, 2 ],
        'the second on a new connection';
    still_fine($from);
};

subtest 'a graceful reload while a TLS delivery is in flight' => sub {
    checkout('slowish');
    $t->wait_received(slowish => 1);
    $t->nginx_conf(conf(2));
    $t->reload;
    my $d;
    ok eventually(sub {
        ($d) = deliveries('slowish');
        $d && $d->{state} eq 'delivered';
    }, 10), 'the old worker finished it';
    is scalar @{ $d->{attempts} }, 1, 'one attempt';
    is scalar @{ $t->received('slowish') }, 1, 'sent once';
};

subtest 'two workers: 20 checkouts, each delivered once' => sub {
    is scalar $t->worker_pids, 2, 'two workers';
    checkout('mass') for 1 .. 20;
    ok eventually(sub { finished(callback('mass')) >= 20 }, 15), 'all finished';
    is_deeply [ @{ callback('mass') }{qw(delivered failed attempts)} ], [ 20, 0, 20 ],
        'delivered, one attempt each';
    my %seen;
    $seen{ decode_json($_->{body})->{fields}{tx} }++ for @{ $t->received('mass') };
    is_deeply \%seen, { map { ("mass$_" => 1) } 1 .. 20 }, 'each received once';
};

$t->stop;
done_testing;
