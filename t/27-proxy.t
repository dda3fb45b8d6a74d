# proxy=: deliveries through an HTTP forward proxy, a real one (Debian's
# tinyproxy, started here on free ports, one instance per config).
# - a callback with proxy= is the curl engine's, its url a literal address
#   or not; the status JSON shows the proxy without its user info, the page
#   shows it next to the engine;
# - an http:// receiver gets the request through the proxy (its Via header,
#   the proxy's log);
# - an https:// receiver through a CONNECT tunnel, verified against
#   ca_file= (without it: a certificate error, the receiver's, not the
#   proxy's);
# - a proxy that refuses the tunnel (a port it does not CONNECT to), one
#   that is down, one whose name does not resolve: failed attempts whose
#   error starts with "proxy: "; retried, delivered once the proxy is up;
#   never counted by disable_on_error= (a receiver's name that does not
#   resolve, without a proxy, is: the control);
# - proxy=http://user:password@: the proxy's basic auth; with a wrong
#   password the proxy refuses the tunnel.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Test::More;

use PBBrowser;
use PBTest qw(eventually);

my $TINYPROXY = '/usr/bin/tinyproxy';
plan skip_all => 'no tinyproxy (apt-get install tinyproxy-bin; make test '
               . 'installs it)'
    unless -x $TINYPROXY;

my $PASSWORD = 'proxy-pw-4Rt';

my $t = PBTest->new;
my $dir = $t->dir;

# the TLS receiver is an extra server of the nginx under test
$t->self_signed_cert;

# ---------------------------------------------------------------- tinyproxy

my %tinyproxy;    # name => pid

# A tinyproxy on $t->port($name), in the foreground (-d), logging to
# tinyproxy.$name.log; CONNECT only to the TLS receiver's port.
sub start_tinyproxy {
    my ($name, @lines) = @_;
    my $conf = $t->write_file("tinyproxy.$name.conf", join "\n",
        'Port ' . $t->port($name), 'Listen 127.0.0.1', 'Timeout 30',
        "LogFile \"$dir/tinyproxy.$name.log\"", 'LogLevel Info',
        'ViaProxyName "pbtest"', 'ConnectPort ' . $t->port('tls'), @lines,
        '');
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/tinyproxy.$name.out";
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec $TINYPROXY, '-d', '-c', $conf }
        print STDERR "cannot run $TINYPROXY: $!\n";
        POSIX::_exit(127);
    }
    $tinyproxy{$name} = $pid;
    eventually(sub {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $t->port($name));
    }, 5) or die "tinyproxy $name does not listen\n";
}

sub stop_tinyproxy {
    my ($name) = @_;
    my $pid = delete $tinyproxy{$name} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

sub tinyproxy_log {
    my ($name) = @_;
    open my $fh, '<', "$dir/tinyproxy.$name.log" or return '';
    local $/;
    return <$fh>;
}

END { stop_tinyproxy($_) for keys %tinyproxy }

# ---------------------------------------------------------------- nginx

$t->receiver('plain');
$t->receiver('late');
$t->receiver('authed');

start_tinyproxy('proxy');
start_tinyproxy('authproxy', "BasicAuth pbuser $PASSWORD");
# 'later' starts once deliveries through it have failed; PORT_other, a
# port tinyproxy does not CONNECT to, has nothing listening
$t->port($_) for qw(later other);

my $via = 'proxy=http://127.0.0.1:%%PORT_proxy%%';

$t->nginx_conf($t->checkout_conf(workers => 1, callbacks => <<"EOF",
            postback_callback plain
                url=http://127.0.0.1:%%PORT_plain%%/hook $via;
            postback_callback tls
                url=https://127.0.0.1:%%PORT_tls%%/hook $via
                ca_file=%%DIR%%/cert.pem;
            postback_callback untrusted
                url=https://127.0.0.1:%%PORT_tls%%/hook $via attempts=1;
            postback_callback refused
                url=https://127.0.0.1:%%PORT_other%%/hook $via attempts=1;
            postback_callback late url=http://127.0.0.1:%%PORT_late%%/hook
                proxy=http://127.0.0.1:%%PORT_later%%
                retry=1s attempts=20 disable_on_error=1s;
            postback_callback nxproxy url=http://no-such-host.invalid/
                proxy=http://no-such-proxy.invalid:3128
                retry=1s attempts=20 disable_on_error=1s;
            postback_callback nxdomain url=http://no-such-host.invalid/
                retry=1s attempts=20 disable_on_error=1s;
            postback_callback authed
                url=http://127.0.0.1:%%PORT_authed%%/hook
                proxy=http://pbuser:$PASSWORD\@127.0.0.1:%%PORT_authproxy%%;
            postback_callback badauth
                url=https://127.0.0.1:%%PORT_tls%%/bad
                proxy=http://pbuser:wrong\@127.0.0.1:%%PORT_authproxy%%
                ca_file=%%DIR%%/cert.pem attempts=1;
            postback_callback direct
                url=http://127.0.0.1:%%PORT_plain%%/direct;
EOF
    servers => <<"EOF"));
    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%DIR%%/cert.pem;
        ssl_certificate_key %%DIR%%/key.pem;
        location / { return 200 "tls ok\\n"; }
    }
EOF
$t->start;

# ---------------------------------------------------------------- helpers

sub status { $t->status_json }
sub callback { $t->callback_status(@_) }

# the callback's only delivery, once it is $state
sub delivery {
    my ($name, $state) = @_;
    my $d;
    eventually(sub {
        ($d) = grep { $_->{callback} eq $name } @{ status()->{deliveries} };
        $d && $d->{state} eq $state;
    }, 15);
    return $d // {};
}

sub errors {
    my ($d) = @_;
    return [ map { $_->{error} } @{ $d->{attempts} } ];
}

# one checkout: every callback gets its delivery
is $t->get('/buy/x?status=APPROVED&tx=P1')->{status}, 200, 'checkout';

# ---------------------------------------------------------------- tests

subtest 'the engine and the proxy of each callback' => sub {
    my $proxy = 'http://127.0.0.1:' . $t->port('proxy');
    is callback('plain')->{engine}, 'curl',
        'proxy= to a literal address: curl';
    is callback('plain')->{proxy}, $proxy, '... the proxy shown';
    is callback('tls')->{proxy}, $proxy, 'https://: the same';
    is callback('authed')->{proxy}, 'http://127.0.0.1:' . $t->port('authproxy'),
        'the proxy shown without its user info';
    is callback('direct')->{engine}, 'nginx', 'no proxy=: nginx';
    is callback('direct')->{proxy}, undef, '... proxy null';
};

subtest 'an http:// receiver through the proxy' => sub {
    my %got = map { $_->{path} => $_ } @{ $t->wait_received(plain => 2) };
    my ($got, $direct) = @got{qw(/hook /direct)};
    ok $got, 'received';
    like $got->{headers}{via}, qr/\bpbtest \(tinyproxy\//, "... with tinyproxy's Via";
    my $port = $t->port('plain');
    like tinyproxy_log('proxy'),
        qr{Request \(file descriptor \d+\): POST http://127\.0\.0\.1:$port/hook },
        "... in tinyproxy's log";
    is delivery(plain => 'delivered')->{state}, 'delivered', 'delivered';
    ok $direct && !exists $direct->{headers}{via}, 'no proxy=: sent directly';
};

subtest 'an https:// receiver through a CONNECT tunnel' => sub {
    is delivery(tls => 'delivered')->{attempts}[0]{response}, "tls ok\n",
        'delivered, ca_file= verifying the receiver';
    my $port = $t->port('tls');
    like tinyproxy_log('proxy'),
        qr/Request \(file descriptor \d+\): CONNECT 127\.0\.0\.1:$port /,
        "... through a tunnel, in tinyproxy's log";
    my $d = delivery(untrusted => 'failed');
    like $d->{attempts}[0]{error}, qr/^SSL certificate problem/,
        "without ca_file=: the receiver's certificate error";
};

subtest 'a proxy that refuses the tunnel' => sub {
    my $d = delivery(refused => 'failed');
    is_deeply errors($d), ['proxy: CONNECT tunnel failed, response 403'],
        'failed: the proxy said 403';
};

subtest 'a proxy down, then up' => sub {
    my $port = $t->port('later');
    ok eventually(sub { (callback('late')->{attempts} // 0) >= 3 }, 10),
        'attempts fail';
    my ($d) = grep { $_->{callback} eq 'late' } @{ status()->{deliveries} };
    like $_, qr/^proxy: Failed to connect to 127\.0\.0\.1 port $port\b/,
        '... the error names the proxy'
        for @{ errors($d) };
    is callback('late')->{state}, 'enabled',
        '... not disabled after disable_on_error=1s: not the url';
    start_tinyproxy('later');
    $d = delivery(late => 'delivered');
    is $d->{state}, 'delivered', 'delivered once the proxy is up';
    my $got = $t->received('late');
    is scalar @$got, 1, '... once';
    like $got->[0]{headers}{via}, qr/tinyproxy/, '... through it';
};

subtest "a proxy's name that does not resolve" => sub {
    ok eventually(sub { callback('nxdomain')->{state} eq 'disabled' }, 10),
        "the control: a receiver's name that does not resolve, disabled";
    ok eventually(sub { (callback('nxproxy')->{attempts} // 0) >= 3 }, 10),
        'through a proxy whose name does not resolve: attempts fail';
    my $cb = callback('nxproxy');
    is $cb->{state}, 'enabled', '... enabled after disable_on_error=1s';
    like $cb->{last_error}, qr/^proxy: Could not resolve proxy: no-such-proxy\.invalid/,
        '... the error names the proxy';
};

subtest "the proxy's basic auth" => sub {
    my ($got) = @{ $t->wait_received(authed => 1) };
    is $got->{path}, '/hook', 'the right password: received';
    ok !exists $got->{headers}{'proxy-authorization'},
        '... without the proxy\'s credentials';
    # tinyproxy answers 401, not 407
    is_deeply errors(delivery(badauth => 'failed')),
        ['proxy: CONNECT tunnel failed, response 401'],
        'a wrong one: the tunnel refused';
    unlike $t->get('/status/?limit=1000')->{body}, qr/\Q$PASSWORD\E/,
        'the password in no status answer';
};

SKIP: {
    skip 'no chromium/chromedriver', 1 unless PBBrowser->available;
    subtest 'the page shows the proxy next to the engine' => sub {
        my $b = PBBrowser->new(dir => $dir, port => $t->port('chromedriver'));
        $b->get('http://127.0.0.1:' . $t->port('front') . '/status/?format=html');
        my $cell = sub {
            $b->script(<<'JS', $_[0]);
var td = document.querySelector('#callbacks tr[data-callback="'
                                + arguments[0] + '"] td.engine');
return td ? td.textContent : null;
JS
        };
        ok $b->wait_until(sub { defined $cell->('plain') }, 10), 'rendered';
        is $cell->('plain'), 'curl via http://127.0.0.1:' . $t->port('proxy'),
            'curl via the proxy';
        is $cell->('direct'), 'nginx', 'no proxy=: the engine alone';
        $b->quit;
    };
}

$t->stop;
stop_tinyproxy($_) for keys %tinyproxy;
done_testing;
