# The Debian package (`make deb`): lintian finds no error or warning in it
# (source, binary and debug packages, as in an upload), its version is
# debian/changelog's and the README names that version and its maintainer.
# Then, as root, it is installed on this machine with apt: its
# modules-enabled file makes the system nginx load the module (`nginx -t`),
# conf.d's example loaded into the system nginx delivers a checkout's
# callback, and a purge leaves the system as it was.  Runs when PB_DEB names
# the .deb (`make test` builds it and sets it).

use strict;
use warnings;
use Test::More;
use File::Spec;
use PBTest;
use PBSample;

my $deb = $ENV{PB_DEB};
plan skip_all => 'PB_DEB names no .deb (make test builds one)'
    unless $deb && -f $deb;
$deb = File::Spec->rel2abs($deb);    # apt takes a path, not a name

my $REPO = PBTest->repo;

# the .changes `make deb` writes beside the .deb lists every package built
(my $changes = $deb) =~ s/\.deb$/.changes/;
my $checked = -f $changes ? $changes : $deb;
my $out = `lintian --fail-on error,warning '$checked' 2>&1`;
is $?, 0, 'lintian: no error or warning in ' . (File::Spec->splitpath($checked))[2]
    or diag $out;

# debian/changelog holds the version; what repeats it must agree
my $version = `dpkg-parsechangelog -l '$REPO/debian/changelog' -S Version`;
chomp $version;
like $version, qr/^\d/, "debian/changelog's version: $version";
is `dpkg-deb -f '$deb' Version`, "$version\n",
    'the package was built from this changelog';

open my $readme_fh, '<', "$REPO/README.md" or die "README.md: $!\n";
my $readme = do { local $/; <$readme_fh> };
close $readme_fh;
my @named = $readme =~ /libnginx-mod-http-postback_(\d[^_\s]*)_/g;
ok @named, 'the README names the package file';
is_deeply [grep { $_ ne $version } @named], [],
    "... with the changelog's version";

my ($address) = `dpkg-deb -f '$deb' Maintainer` =~ /<([^>]+)>/;
ok $address && index($readme, $address) >= 0,
    'the README sends bug reports to the Maintainer, ' . ($address // '-');

my $PKG = 'libnginx-mod-http-postback';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-postback.conf';
my $SO = '/usr/lib/nginx/modules/ngx_http_postback_module.so';
my $CONF = '/etc/nginx/conf.d/zz-postback-test.conf';
my $PID = '/run/nginx.pid';

sub installed { `dpkg-query -W -f='\${Status}' $PKG 2>/dev/null` =~ /install ok installed/ }
sub running {
    open my $fh, '<', $PID or return 0;    # gone when nginx exits
    my ($pid) = (<$fh> // '') =~ /^(\d+)/ or return 0;
    return kill 0, $pid;
}

# whatever happens (a failure, a signal), the system is put back: the
# package purged (even half-installed) before nginx reloads without it
my ($started, $cleaned, $was_running);
sub cleanup {
    return if !$started || $cleaned++;
    unlink $CONF;
    system "apt-get purge -y -qq $PKG >/dev/null 2>&1";
    if ($was_running) {
        system 'nginx -s reload 2>/dev/null';
    } elsif (running()) {
        system 'nginx -s quit 2>/dev/null';
        PBTest::eventually(sub { !running() }, 10);
    }
}
END { cleanup() }

sub install_run_purge {
    die "$PKG is installed already: this test would remove it\n" if installed();
    die "$CONF exists\n" if -e $CONF;
    $was_running = running();

    my $t = PBTest->new;
    $SIG{$_} = sub { exit 1 } for qw(INT TERM);

    $started = 1;
    my $out = `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq '$deb' 2>&1`;
    is $?, 0, 'apt installs the package' or diag $out;
    ok installed(), "$PKG installed";
    ok -l $ENABLED, 'its load file is enabled';
    like readlink($ENABLED) // '',
        qr{/usr/share/nginx/modules-available/mod-http-postback\.conf$},
        '... from modules-available';
    ok -f $SO, 'the module is installed';

    $out = `nginx -t 2>&1`;
    is $?, 0, 'nginx -t passes with the module loaded' or diag $out;

    # conf.d's example, its ports moved to free ones as the other tests do
    $t->upstream(checkout => \&PBSample::checkout);
    $t->receiver('members');
    $t->receiver('tracker');
    my $front = $t->port('front');
    open my $fh, '>', $CONF or die "$CONF: $!\n";
    print $fh $t->conf_d_text('postback.conf', {
        '127.0.0.1:8080' => "127.0.0.1:$front",
        '127.0.0.1:8081' => '127.0.0.1:' . $t->port('checkout'),
        '127.0.0.1:8091' => '127.0.0.1:' . $t->port('members'),
        '127.0.0.1:8092' => '127.0.0.1:' . $t->port('tracker'),
    });
    close $fh;

    $out = `nginx -t 2>&1`;
    is $?, 0, 'nginx -t passes with the example' or diag $out;
    $out = $was_running ? `nginx -s reload 2>&1` : `nginx 2>&1`;
    is $?, 0, 'the system nginx runs it' or diag $out;

    my $r;
    PBTest::eventually(sub {
        $r = $t->get('/api/checkout/buy?product=1234&status=APPROVED&click_id=c1');
        ($r->{status} // 0) == 200;
    }, 10);
    is $r->{status}, 200, 'a checkout through the system nginx';
    my $got = $t->wait_received(members => 1, 10);
    is scalar @$got, 1, 'the members area got its callback';
    is $t->wait_received(tracker => 1, 10)->[0]{args}{clickid}, 'c1',
        'the tracker its postback';

    cleanup();

    ok !installed(), 'purged';
    ok !-e $ENABLED, 'its load file is gone';
    ok !-e $SO, 'the module is gone';
    ok !-e $CONF, 'the example is gone';
    is !!running(), !!$was_running, 'nginx as it was: '
        . ($was_running ? 'running' : 'stopped');
    $out = `nginx -t 2>&1`;
    is $?, 0, 'nginx -t passes again' or diag $out;

    $t->stop_server($_) for qw(checkout members tracker);
}

SKIP: {
    skip 'installing a package needs root', 1 if $> != 0;
    install_run_purge();
}

done_testing;
