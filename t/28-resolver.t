# Names resolved by nginx's resolver: a callback whose url has a host name,
# written where a `resolver` directive is in effect, is sent by the nginx
# engine, which asks that resolver (a DNS server of the test's,
# PBTest::DNS); without a resolver libcurl sends it.
#
# With `resolver ... valid=1s` at http level and callbacks written there:
# - http://hook.test:PORT/ is sent by nginx, delivered, with Host:
#   hook.test:PORT (and resolver_timeout, not set at http level, is
#   nginx's default there too);
# - https://hook.test:PORT/ with ca_file=: delivered, with SNI hook.test,
#   the certificate checked against the name;
# - a name the DNS server does not know (NXDOMAIN): the attempt's error
#   says it could not be resolved, and disable_on_error=1s disables the
#   callback (wrong_url);
# - an address from the resolver's cache whose connection is refused at
#   once: the attempt fails with connect()'s error;
# - within valid= the answer is cached; after it the name is looked up
#   again and a new address is followed (a receiver on 127.0.0.1, then one
#   on 127.0.0.2 at the same port);
# - a DNS server that never answers (a location's resolver, with
#   resolver_timeout 1s): the attempt fails after about 1 s with the
#   resolver's error, the client answered at once;
# - a graceful reload while a lookup is pending: the old worker waits for
#   the lookup, records the attempt and leaves, the error log clean.
# With no resolver at http level (a second nginx):
# - a resolver at location level serves the callbacks written in that
#   location, one at server level the locations of that server; elsewhere
#   a name goes to libcurl.

use strict;
use warnings;

use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);

use PBTest qw(eventually);

my $JSON = JSON::PP->new->utf8;

my $t = PBTest->new;
my $dir = $t->dir;

my $openssl = qx{openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $dir/key.pem -out $dir/cert.pem -days 2 -subj /CN=test -addext subjectAltName=DNS:hook.test 2>&1};
die "openssl failed:\n$openssl" if $?;

$t->dns(dns => names => { 'hook.test' => '127.0.0.1',
                          'move.test' => '127.0.0.1' });
$t->dns(mute => silent => 1);

$t->receiver('hook');
$t->port('closed');    # nothing listens there
$t->receiver('moveA');
# the same port on another address: where move.test moves to
my $second_addr = IO::Socket::INET->new(LocalAddr => '127.0.0.2', Listen => 1)
    ? 1 : 0;
$t->receiver(moveB => addr => '127.0.0.2', port => $t->port('moveA'))
    if $second_addr;

$t->nginx_conf($t->module_conf(<<'EOF', workers => 1));
    resolver 127.0.0.1:%%PORT_dns%% valid=1s;

    postback_zone resolver:4m;
    postback_field status $.status;
    postback_field tx $.tx;
    postback_event $postback_status;

    # written at http level: the http level's resolver
    postback_callback named url=http://hook.test:%%PORT_hook%%/hook/$postback_tx
        events=NAMED;
    postback_callback tls url=https://hook.test:%%PORT_tls%%/tls/$postback_tx
        ca_file=%%DIR%%/cert.pem attempts=1 events=TLS;
    postback_callback nowhere url=http://nowhere.test:%%PORT_hook%%/hook/$postback_tx
        retry=1s attempts=20 disable_on_error=1s events=NOWHERE;
    postback_callback refused url=http://hook.test:%%PORT_closed%%/hook/$postback_tx
        attempts=1 events=REFUSED;
    postback_callback move url=http://move.test:%%PORT_moveA%%/hook/$postback_tx
        events=MOVE;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        postback on;

        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
        }
        location /mute/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            resolver 127.0.0.1:%%PORT_mute%%;
            resolver_timeout 1s;
            postback_callback mute url=http://hook.test:%%PORT_hook%%/hook/$postback_tx
                attempts=1;
        }
        location /doc/ {
            postback off;
            default_type application/json;
            return 200 '{"status":"$arg_status","tx":"$arg_tx"}';
        }
        location /status/ {
            postback_status;
        }
    }

    log_format sni "$ssl_server_name";
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%DIR%%/cert.pem;
        ssl_certificate_key %%DIR%%/key.pem;
        access_log %%DIR%%/sni.log sni;
        location / { return 200 "tls ok\n"; }
    }
EOF
$t->start;

# ---------------------------------------------------------------- helpers

sub status {
    my ($h) = @_;
    my $r = $h->get('/status/?limit=1000');
    die "status page: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    return $JSON->decode($r->{body});
}

sub callback {
    my ($name, $h) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ status($h // $t)->{callbacks} };
    return $cb // {};
}

# a callback's deliveries, oldest first
sub deliveries {
    my ($name, $h) = @_;
    return reverse grep { $_->{callback} eq $name }
        @{ status($h // $t)->{deliveries} };
}

# the checkout of tx with event $event; the client's answer
sub checkout {
    my ($event, $tx, $path, $h) = @_;
    my $r = ($h // $t)->get(($path // '/buy/') . "x?status=$event&tx=$tx");
    is $r->{status}, 200, "checkout $tx answered" or diag $r->{error};
    return $r;
}

# the delivery of tx once it is $state; undef if it is not within 10 s
sub wait_delivery {
    my ($name, $tx, $state, $h) = @_;
    my $found;
    eventually(sub {
        ($found) = grep { $_->{url} =~ m{/\Q$tx\E$} } deliveries($name, $h);
        $found && $found->{state} eq $state;
    }, 10);
    return $found && $found->{state} eq $state ? $found : undef;
}

sub a_lookups {
    my ($name) = @_;
    return scalar @{ $t->dns_queries(dns => $name, 'A') };
}

# ---------------------------------------------------------------- tests

subtest 'a name and a resolver: the nginx engine' => sub {
    is callback($_)->{engine}, 'nginx', "$_: nginx" for qw(named tls nowhere refused move mute);

    checkout(NAMED => 'H1');
    my $d = wait_delivery(named => 'H1', 'delivered');
    ok $d, 'delivered';
    my ($rec) = @{ $t->received('hook') };
    is $rec->{headers}{host}, 'hook.test:' . $t->port('hook'), 'Host: the name';
    is a_lookups('hook.test'), 1, 'the DNS server was asked for its address';
    my @aaaa = @{ $t->dns_queries(dns => 'hook.test', 'AAAA') };
    is scalar @aaaa, 1, '... and for an IPv6 one (none)';
};

subtest 'https to a name: SNI, the certificate checked against the name' => sub {
    checkout(TLS => 'S1');
    my $d = wait_delivery(tls => 'S1', 'delivered');
    ok $d, 'delivered' or diag explain [ deliveries('tls') ];
    open my $fh, '<', "$dir/sni.log" or die "sni.log: $!\n";
    my @names = map { chomp; $_ } <$fh>;
    is_deeply \@names, ['hook.test'], 'the server name sent: hook.test';
};

subtest 'a name that does not exist: wrong_url' => sub {
    my $r = checkout(NOWHERE => 'X1');
    cmp_ok $r->{elapsed}, '<', 1, 'the client answered at once';
    my $failed;
    ok eventually(sub {
        my ($d) = grep { $_->{url} =~ m{/X1$} } deliveries('nowhere');
        $failed = $d && $d->{attempts}[0];
    }, 10), 'an attempt failed';
    like $failed->{error}, qr/^nowhere\.test could not be resolved \(3: Host not found\)/,
        'the error: could not be resolved';
    ok a_lookups('nowhere.test') >= 1, 'the DNS server was asked';

    ok eventually(sub { callback('nowhere')->{state} eq 'disabled' }, 10),
        'disable_on_error=1s: disabled';
    is callback('nowhere')->{disabled_reason}, 'wrong_url', '... wrong url';
};

subtest 'an address from the cache, its connection refused at once' => sub {
    for my $tx (qw(R1 R2)) {
        checkout(REFUSED => $tx);
        my $d = wait_delivery(refused => $tx, 'failed');
        ok $d, "$tx failed";
        like $d && $d->{attempts}[0]{error}, qr/^connect\(\) failed: Connection refused/,
            '... refused';
    }
};

SKIP: {
    skip 'cannot listen on 127.0.0.2', 1 unless $second_addr;

subtest 'the answer is cached for valid=, then looked up again' => sub {
    my $start = time;
    checkout(MOVE => 'M1');
    ok wait_delivery(move => 'M1', 'delivered'), 'delivered';
    checkout(MOVE => 'M2');
    ok wait_delivery(move => 'M2', 'delivered'), 'delivered again';
    is scalar @{ $t->received('moveA') }, 2, 'both to 127.0.0.1';
    SKIP: {
        # valid=1s keeps an answer until the second after the next begins
        skip 'the host was too slow to see the cache', 1 if time - $start > 0.9;
        is a_lookups('move.test'), 1, 'one lookup: the second from the cache';
    }

    $t->dns_names(dns => { 'hook.test' => '127.0.0.1',
                           'move.test' => '127.0.0.2' });
    my $n = 2;
    ok eventually(sub {
        $n++;
        checkout(MOVE => "M$n");
        wait_delivery(move => "M$n", 'delivered');
        @{ $t->received('moveB') } > 0;
    }, 10), 'once valid= passed, deliveries go to the new address';
    ok a_lookups('move.test') >= 2, 'the name was looked up again';
    my ($rec) = @{ $t->received('moveB') };
    is $rec->{headers}{host}, 'move.test:' . $t->port('moveA'),
        '127.0.0.2 got Host: move.test';
};
}

subtest 'a DNS server that does not answer: resolver_timeout' => sub {
    my $r = checkout(MUTE => 'Q1', '/mute/');
    cmp_ok $r->{elapsed}, '<', 0.5, 'the client answered at once';
    my $d = wait_delivery(mute => 'Q1', 'failed');
    ok $d, 'failed';
    my $a = $d && $d->{attempts}[0] // {};
    like $a->{error}, qr/^hook\.test could not be resolved \(110: Operation timed out\)/,
        'the error: the resolver timed out';
    cmp_ok $a->{duration_ms}, '>=', 900, 'after resolver_timeout 1s';
    cmp_ok $a->{duration_ms}, '<', 3000, '... not much later';
    ok @{ $t->dns_queries(mute => 'hook.test') } >= 1, 'the DNS server was asked';
};

subtest 'a graceful reload while a lookup is pending' => sub {
    my $asked = @{ $t->dns_queries(mute => 'hook.test') };
    my ($old) = $t->worker_pids;
    checkout(MUTE => 'Q2', '/mute/');
    ok eventually(sub { @{ $t->dns_queries(mute => 'hook.test') } > $asked }, 5),
        'the lookup is pending';
    $t->reload;
    my $d = wait_delivery(mute => 'Q2', 'failed');
    ok $d, 'the old worker recorded the attempt';
    like $d && $d->{attempts}[0]{error}, qr/could not be resolved/, '... the lookup timed out';
    ok eventually(sub { !kill 0, $old }, 5), 'the old worker left';
};

$t->stop;

# ---------------------------------------------------------------- levels

my $u = PBTest->new;
$u->dns(dns => names => { 'hook.test' => '127.0.0.1' });
$u->receiver('hook');
$u->receiver('local');

$u->nginx_conf($u->module_conf(<<'EOF', workers => 1));
    postback_zone levels:1m;
    postback_field status $.status;
    postback_field tx $.tx;
    postback_event $postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        postback on;

        location /resolver/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            resolver 127.0.0.1:%%PORT_dns%%;
            postback_callback in_location url=http://hook.test:%%PORT_hook%%/in/$postback_tx;
        }
        location /none/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback no_resolver url=http://localhost:%%PORT_local%%/out/$postback_tx;
        }
        location /doc/ {
            postback off;
            default_type application/json;
            return 200 '{"status":"$arg_status","tx":"$arg_tx"}';
        }
        location /status/ {
            postback_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_other%%;
        postback on;
        resolver 127.0.0.1:%%PORT_dns%%;

        location / {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback in_server url=http://hook.test:%%PORT_hook%%/srv/$postback_tx;
        }
    }
EOF
$u->start;

subtest 'the resolver of the level where the callback is written' => sub {
    is callback(in_location => $u)->{engine}, 'nginx', 'location level: nginx';
    is callback(in_server => $u)->{engine}, 'nginx', 'server level: nginx';
    is callback(no_resolver => $u)->{engine}, 'curl', 'no resolver: curl';

    checkout(APPROVED => 'L1', '/resolver/', $u);
    checkout(APPROVED => 'L2', '/none/', $u);
    my $r = $u->get('/x?status=APPROVED&tx=L3', port => 'other');
    is $r->{status}, 200, 'checkout L3 answered';
    ok wait_delivery(in_location => 'L1', 'delivered', $u), 'location: delivered';
    ok wait_delivery(no_resolver => 'L2', 'delivered', $u), 'no resolver: delivered';
    ok wait_delivery(in_server => 'L3', 'delivered', $u), 'server: delivered';
    is_deeply [ sort map { $_->{path} } @{ $u->received('hook') } ],
        [qw(/in/L1 /srv/L3)],
        'hook.test got both';
    is scalar @{ $u->received('local') }, 1, 'localhost got its own';
};

$u->stop;
done_testing;
