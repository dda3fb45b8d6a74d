# Tests of the test harness itself (t/lib/PBTest.pm), with plain nginx: no
# module is loaded, so this runs before the module builds.

use strict;
use warnings;

use IO::Socket::INET;
use Test::More;

use PBTest;

my $t = PBTest->new;

# Several KB, so that chunked answers span many chunks.
my $json = '{"id":42,"items":[' . join(',', map { qq({"n":$_,"s":"item $_"}) } 1 .. 300) . ']}';

my %routes = (
    '/plain'     => { body => $json },
    '/chunked'   => { body => $json, chunked => 1, chunk_size => 700 },
    '/gzip'      => { body => $json, gzip => 1 },
    '/truncated' => { body => $json, close_after => 100 },
    '/held'      => { body => $json, chunked => 1, chunk_size => 700,
                      hold_after => 1400, hold_until => $t->dir . '/go' },
);
$t->upstream(app => sub {
    my ($req) = @_;
    my $route = $routes{ $req->{path} } or return { status => 404, body => 'no route' };
    return { headers => [ 'Content-Type' => 'application/json' ], %$route };
});
$t->receiver('hook');
$t->receiver(flaky => respond => sub {
    my ($req, $n) = @_;
    return { status => $n == 1 ? 503 : 200, body => "answer $n" };
});
$t->receiver(slow => delay => 0.3);
$t->receiver('named');
$t->dns(dns => names => { 'named.test' => '127.0.0.1' });
$t->dns(mute => silent => 1);
$t->receiver(rst => respond => sub { { body => 'reset', close => 'reset' } });
# over TLS: answers by path, the last two ending the connection
my $cert = $t->self_signed_cert;
$t->receiver(tls => tls => $cert, respond => sub {
    my ($req) = @_;
    my %close = ('/reset' => 'reset', '/tcp' => 'tcp');
    return { body => 'x' x 40000, close => $close{ $req->{path} } };
});

my $common = $t->http_common;
my $conf = <<"EOF";
worker_processes 2;
events {}
http {
$common
    upstream app {
        server 127.0.0.1:%%PORT_app%%;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:%%PORT_front%%;
        resolver 127.0.0.1:%%PORT_dns%%;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        # a variable in proxy_pass: the name is looked up at each request
        location /dns/ {
            proxy_pass http://\$arg_host:%%PORT_named%%;
        }
        location /mute/ {
            resolver 127.0.0.1:%%PORT_mute%%;
            resolver_timeout 500ms;
            set \$host_name named.test;
            proxy_pass http://\$host_name:%%PORT_named%%;
        }
    }
}
EOF
$t->nginx_conf($conf);
$t->start;

subtest 'bodies pass the proxy byte for byte' => sub {
    my $r = $t->get('/plain');
    is $r->{status}, 200, 'plain: status';
    is $r->{headers}{'content-type'}, 'application/json', 'plain: upstream header';
    ok $r->{body} eq $json, 'plain: body';

    $r = $t->get('/chunked');
    is $r->{headers}{'transfer-encoding'}, 'chunked', 'chunked: stays chunked';
    ok $r->{body} eq $json, 'chunked: dechunked body';
    like $r->{raw}, qr/\r\n\r\n[0-9a-f]+\r\n/, 'chunked: raw bytes kept';

    $r = $t->get('/gzip');
    is $r->{headers}{'content-encoding'}, 'gzip', 'gzip: encoding';
    ok $r->{body} eq PBTest::gzip($json), 'gzip: body untouched';

    $r = $t->get('/truncated');
    is $r->{status}, 200, 'truncated: status';
    like $r->{error}, qr/closed/, 'truncated: reported';
    is $r->{body}, substr($json, 0, 100), 'truncated: the bytes sent';

    my $held;
    $r = $t->get('/held', after_send => sub {
        # the upstream has the request, and holds the body's rest
        $held = PBTest::eventually(sub { @{ $t->received('app') } == 5 }, 5)
                && !-e $t->dir . '/go';
        $t->write_file('go', '');
    });
    ok $held, 'held: the request sent before the response is read';
    ok $r->{body} eq $json, 'held: the whole body once the file is there';

    my @paths = map { $_->{path} } @{ $t->received('app') };
    is_deeply \@paths, [qw(/plain /chunked /gzip /truncated /held)], 'upstream records';
};

subtest 'receiver records requests' => sub {
    my $r = $t->post('/cb/x?a=1&b=x%20y&b=2&c=a+b', '{"k":"v"}', port => 'hook',
        headers => [ 'Content-Type' => 'application/json', 'X-Sig' => 'abc', 'X-Sig' => 'def' ]);
    is $r->{status}, 200, 'status';
    is $r->{body}, 'ok', 'default body';

    my ($rec) = @{ $t->wait_received(hook => 1) };
    is $rec->{method}, 'POST', 'method';
    is $rec->{uri}, '/cb/x?a=1&b=x%20y&b=2&c=a+b', 'uri';
    is $rec->{path}, '/cb/x', 'path';
    is $rec->{query}, 'a=1&b=x%20y&b=2&c=a+b', 'query';
    is_deeply $rec->{args}, { a => 1, b => 'x y', c => 'a b' }, 'args, first of repeated';
    is $rec->{headers}{'content-type'}, 'application/json', 'header';
    is $rec->{headers}{'x-sig'}, 'abc, def', 'repeated header';
    is $rec->{body}, '{"k":"v"}', 'body';
    is $rec->{status}, 200, 'status recorded';
    ok $rec->{peer_port} > 0 && $rec->{time} > 0 && $rec->{conn} == 1, 'peer, time, connection';

    my @answers = map { $t->get("/try$_", port => 'flaky') } 1 .. 2;
    is_deeply [ map { "$_->{status} $_->{body}" } @answers ],
        [ '503 answer 1', '200 answer 2' ], 'respond sub gets the request number';
    is_deeply [ map { $_->{status} } @{ $t->received('flaky') } ], [ 503, 200 ], 'statuses recorded';

    $r = $t->get('/slow', port => 'slow');
    cmp_ok $r->{elapsed}, '>=', 0.3, 'delay';
    is scalar @{ $t->received('slow') }, 1, 'recorded';

    # the answer may arrive before the RST or be lost with it
    $t->get("/rst$_", port => 'rst') for 1 .. 2;
    is_deeply [ map { [ $_->{path}, $_->{conn} ] } @{ $t->received('rst') } ],
        [ [ '/rst1', 1 ], [ '/rst2', 2 ] ], "close => 'reset': each connection reset, the server still up";
};

subtest 'dns server' => sub {
    my $r = $t->get('/dns/?host=named.test');
    is $r->{status}, 200, 'a known name: nginx reached its address';
    is scalar @{ $t->received('named') }, 1, '... the receiver got the request';
    is_deeply [ sort map { "$_->{name} $_->{type} $_->{rcode}" } @{ $t->dns_queries('dns') } ],
        [ 'named.test A 0', 'named.test AAAA 0' ], 'queries recorded: A, and AAAA (answered empty)';

    is $t->get('/dns/?host=nowhere.test')->{status}, 502, 'an unknown name: 502';
    is_deeply [ map { $_->{rcode} } @{ $t->dns_queries(dns => 'nowhere.test', 'A') } ],
        [ 3 ], '... NXDOMAIN';

    $r = $t->get('/mute/');
    is $r->{status}, 502, 'a silent server: 502';
    cmp_ok $r->{elapsed}, '>=', 0.4, '... after resolver_timeout';
    my ($q) = @{ $t->dns_queries(mute => 'named.test', 'A') };
    ok $q && !defined $q->{rcode}, '... the query recorded, unanswered';
};

subtest 'keep-alive connection serial' => sub {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('hook'))
        or die "connect: $!";
    my $reader = PBTest::HTTP->new($sock, timeout => 5);
    syswrite $sock, "POST /ka/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst";
    is $reader->read_response('POST')->{status}, 200, 'first answer';
    syswrite $sock, "POST /ka/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        . "3\r\nsec\r\n3;ext=1\r\nond\r\n0\r\n\r\n";
    is $reader->read_response('POST')->{status}, 200, 'second answer';
    close $sock;

    my @ka = grep { $_->{path} =~ m{^/ka/} } @{ $t->wait_received(hook => 3) };
    is_deeply [ map { $_->{body} } @ka ], [qw(first second)], 'bodies (length, chunked)';
    is $ka[0]{conn}, $ka[1]{conn}, 'same connection serial';
    is_deeply [ map { $_->{conn_req} } @ka ], [ 1, 2 ], 'index on the connection';
    isnt $ka[0]{conn}, $t->received('hook')->[0]{conn}, 'new connection, new serial';
};

subtest 'a TLS receiver' => sub {
    require IO::Socket::SSL;
    my $sock = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('tls'),
        SSL_ca_file => $cert->{cert}, SSL_verifycn_name => 'localhost')
        or die "TLS connect: " . IO::Socket::SSL::errstr();
    my $reader = PBTest::HTTP->new($sock, timeout => 5);
    my $ask = sub {
        PBTest::HTTP::write_all($sock, "GET $_[0] HTTP/1.1\r\nHost: x\r\n\r\n");
        my %res;
        eval { $reader->read_response('GET', \%res); 1 } or chomp($res{error} = $@);
        return \%res;
    };
    # 40000 bytes: three TLS records, each read whole or in part
    is_deeply [ map { length $ask->('/keep')->{body} } 1 .. 2 ], [ 40000, 40000 ],
        'two answers on one connection';
    is $ask->('/tcp')->{error}, undef, "close => 'tcp': the answer whole";
    my $rest = eval { $reader->read_response('GET') } ? 'an answer' : $@;
    like $rest, qr/closed before a response/, '... then the connection closed';

    my @recs = @{ $t->wait_received(tls => 3) };
    is_deeply [ map { [ $_->{conn}, $_->{conn_req} ] } @recs ], [ [ 1, 1 ], [ 1, 2 ], [ 1, 3 ] ],
        'one connection, three requests';

    $sock = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('tls'),
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
        or die "TLS connect: " . IO::Socket::SSL::errstr();
    PBTest::HTTP::write_all($sock, "GET /reset HTTP/1.1\r\nHost: x\r\n\r\n");
    my ($n, $got) = (0, 0);
    $got += $n while $n = sysread($sock, my $buf, 100000);
    ok !defined $n && $!{ECONNRESET}, "close => 'reset': a RST"
        or diag "read: " . ($n // "undef, $!") . " after $got bytes";
};

subtest 'reload' => sub {
    my @before = $t->worker_pids;
    is scalar @before, 2, 'two workers';
    $t->reload;
    my @after = $t->worker_pids;
    is scalar @after, 2, 'two new workers';
    my %old = map { $_ => 1 } @before;
    ok !grep({ $old{$_} } @after), 'all replaced';
    is $t->get('/plain')->{status}, 200, 'serves after reload';

    $t->allow_log(qr/bogus_directive/);
    $t->nginx_conf("bogus_directive on;\n$conf");
    ok !eval { $t->reload; 1 }, 'refused config: reload dies';
    like $@, qr/unknown directive "bogus_directive"/, 'with the message';
    is_deeply [ $t->worker_pids ], \@after, 'old workers stay';
};

subtest 'stop' => sub {
    my @workers = $t->worker_pids;
    $t->stop;
    is_deeply [ grep { kill 0, $_ } @workers ], [], 'workers gone';
    is_deeply [ $t->worker_pids ], [], 'no workers listed';
};

subtest 'test_conf refuses a broken config' => sub {
    my ($rc, $out) = $t->test_conf;    # still the bogus one
    isnt $rc, 0, 'non-zero exit';
    like $out, qr/unknown directive "bogus_directive"/, 'message';
};

done_testing;
