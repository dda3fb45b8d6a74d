# The nginx engine: receivers at a literal address over http:// are sent
# to over nginx's own connections (t/05-delivery.t runs the delivery suite
# through it, t/05-delivery-curl.t through libcurl).  Here what is its own:
# - the status page names the engine: nginx for 127.0.0.1 and [::1], curl
#   for a name;
# - the request a receiver sees is the one curl would send (Host, Accept,
#   Content-Length, the module's lines), plus Connection: keep-alive;
# - a kept-alive connection the receiver closes while idle: the next
#   delivery goes on a new connection, delivered at its first attempt;
# - a kept-alive connection the receiver closes as the next request comes
#   (the race with its idle close): sent again on a new connection, once,
#   not counted as an attempt;
# - a chunked answer is read whole, its first bytes kept, its connection
#   reused;
# - a receiver that never answers: "timed out after 500 ms" with
#   timeout=500ms, nothing hangs;
# - garbage, and an answer cut short: "bad answer: ..." with the parser's
#   reason;
# - a graceful reload while a delivery is in flight: the old worker
#   finishes it, one attempt, no second send.

use strict;
use warnings;

use Test::More;

use PBTest qw(eventually);

my $t = PBTest->new;

$t->receiver('keep');
$t->receiver('wire');
# answers keep-alive, then closes at once
$t->receiver(closer => respond => sub {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
});
# the second request, on the kept-alive connection, gets no answer
$t->receiver(drop => respond => sub {
    my ($req, $n) = @_;
    return $n == 2 ? '' : { status => 200, body => 'ok' };
});
$t->receiver(chunked => respond => sub {
    { status => 200, chunked => 1, chunk_size => 4, body => 'a chunked answer, whole' };
});
$t->receiver(hang => delay => 30);
$t->receiver(garbage => respond => sub { "garbage\r\n\r\n" });
$t->receiver(cut => respond => sub {
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
});
$t->receiver(slowish => delay => 1.5);

my %callbacks = (
    keep    => 'url=http://127.0.0.1:%%PORT_keep%%/hook',
    closer  => 'url=http://127.0.0.1:%%PORT_closer%%/hook',
    drop    => 'url=http://127.0.0.1:%%PORT_drop%%/hook',
    chunked => 'url=http://127.0.0.1:%%PORT_chunked%%/hook',
    hang    => 'url=http://127.0.0.1:%%PORT_hang%%/hook timeout=500ms attempts=1',
    garbage => 'url=http://127.0.0.1:%%PORT_garbage%%/hook attempts=1',
    cut     => 'url=http://127.0.0.1:%%PORT_cut%%/hook attempts=1',
    slowish => 'url=http://127.0.0.1:%%PORT_slowish%%/hook',
);

$t->nginx_conf($t->checkout_conf(workers => 1,
    locations => $t->callback_locations(%callbacks, wire => <<'EOF')));
            postback_callback via_nginx url=http://127.0.0.1:%%PORT_wire%%/n
                header=X-Extra:1;
            postback_callback via_curl url=http://localhost:%%PORT_wire%%/c
                header=X-Extra:1;
            postback_callback v6 url=http://[::1]:%%PORT_wire%%/ events=NONE;
EOF
$t->start;

sub status { $t->status_json }
sub callback { $t->callback_status(@_) }
sub deliveries { $t->callback_deliveries(@_) }

# a checkout at /$name/, then until its callback finished $n deliveries
sub deliver {
    my ($name, $n) = @_;
    $t->get("/$name/x?status=APPROVED&tx=$name$n");
    ok eventually(sub {
        my $cb = callback($name);
        ($cb->{delivered} // 0) + ($cb->{failed} // 0) >= $n;
    }, 10), "$name: delivery $n finished";
}

subtest 'the engine of each callback' => sub {
    is callback('keep')->{engine}, 'nginx', 'http://127.0.0.1: nginx';
    is callback('v6')->{engine}, 'nginx', 'http://[::1]: nginx';
    is callback('via_curl')->{engine}, 'curl', 'http://localhost: curl';
};

subtest 'what the receiver sees, from either engine' => sub {
    $t->get('/wire/x?status=APPROVED&tx=W1');
    my $got = $t->wait_received(wire => 2);
    my %by = map { $_->{path} => $_ } @$got;
    my ($n, $c) = @by{qw(/n /c)};
    is $n->{version}, '1.1', 'HTTP/1.1';
    is $n->{method}, 'POST', 'POST';
    is $n->{headers}{host}, '127.0.0.1:' . $t->port('wire'), 'Host';
    is $n->{headers}{connection}, 'keep-alive', 'Connection: keep-alive';
    is $n->{headers}{'content-length'}, length $n->{body}, 'Content-Length';
    # curl sends no Connection: HTTP/1.1 keeps alive by default
    is_deeply [ sort grep { $_ ne 'connection' } keys %{ $n->{headers} } ],
              [ sort keys %{ $c->{headers} } ], 'the same header names as curl';
    is_deeply [ @{ $n->{headers} }{qw(accept content-type user-agent x-extra)} ],
              [ @{ $c->{headers} }{qw(accept content-type user-agent x-extra)} ],
              '... and values';
};

subtest 'sequential deliveries share a kept-alive connection' => sub {
    deliver(keep => $_) for 1 .. 3;
    my $recs = $t->received('keep');
    is_deeply [ map { $_->{conn_req} } @$recs ], [ 1, 2, 3 ],
        'three requests on one connection';
    is_deeply [ map { $_->{conn} } @$recs ], [ (1) x 3 ], '... the first';
};

subtest 'a kept-alive connection the receiver closed' => sub {
    deliver(closer => $_) for 1 .. 3;
    my $recs = $t->received('closer');
    is scalar @$recs, 3, 'three requests';
    is_deeply [ map { $_->{conn} } @$recs ], [ 1, 2, 3 ], 'each on a new connection';
    is_deeply [ @{ callback('closer') }{qw(delivered failed attempts)} ], [ 3, 0, 3 ],
        'each delivered at its first attempt';
};

subtest 'a kept-alive connection closed as the request came' => sub {
    deliver(drop => $_) for 1 .. 2;
    my $recs = $t->received('drop');
    is_deeply [ map { [ $_->{conn}, $_->{conn_req} ] } @$recs ],
              [ [ 1, 1 ], [ 1, 2 ], [ 2, 1 ] ],
              'the second sent again on a new connection';
    is_deeply [ @{ callback('drop') }{qw(delivered failed attempts)} ], [ 2, 0, 2 ],
        'both delivered, one attempt each';
};

subtest 'a chunked answer' => sub {
    deliver(chunked => $_) for 1 .. 2;
    my @d = deliveries('chunked');
    is_deeply [ map { $_->{state} } @d ], [qw(delivered delivered)], 'delivered';
    is $d[0]{attempts}[0]{response}, 'a chunked answer, whole', 'the answer, unchunked';
    is_deeply [ map { $_->{conn_req} } @{ $t->received('chunked') } ], [ 1, 2 ],
        'the connection served the next one';
};

subtest 'a receiver that never answers' => sub {
    deliver(hang => 1);
    my ($d) = deliveries('hang');
    my $a = $d->{attempts}[0] // {};
    is $d->{state}, 'failed', 'failed';
    is $a->{error}, 'timed out after 500 ms', 'the error';
    cmp_ok $a->{duration_ms}, '>=', 450, 'after about 500 ms';
    cmp_ok $a->{duration_ms}, '<', 2000, '... not much more';
};

subtest 'answers that are not HTTP' => sub {
    deliver(garbage => 1);
    deliver(cut => 1);
    my ($g) = deliveries('garbage');
    is $g->{attempts}[0]{error}, 'bad answer: not an HTTP/1.x status line', 'garbage';
    is $g->{attempts}[0]{status}, 0, '... no status';
    my ($c) = deliveries('cut');
    is $c->{attempts}[0]{error},
        'bad answer: the connection closed before the body ended', 'cut short';
    is_deeply [ map { $_->{state} } $g, $c ], [qw(failed failed)], 'both failed';
};

subtest 'a graceful reload while a delivery is in flight' => sub {
    $t->get('/slowish/x?status=APPROVED&tx=G1');
    $t->wait_received(slowish => 1);
    $t->reload;
    my $d;
    ok eventually(sub {
        ($d) = deliveries('slowish');
        $d && $d->{state} eq 'delivered';
    }, 10), 'the old worker finished it';
    is scalar @{ $d->{attempts} }, 1, 'one attempt';
    is scalar @{ $t->received('slowish') }, 1, 'sent once';
};

$t->stop;
done_testing;
