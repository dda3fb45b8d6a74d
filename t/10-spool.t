# spool= on postback_zone: pending deliveries survive a stop and a start
# (same webhook-ids), a torn last record is skipped with a log line, the
# journal is read by a worker just after a start (not by the master) and
# compacted then to what is still pending and, while nginx runs, once it is
# mostly finished records (both workers then append to the new file), and
# a zone too full for a new delivery keeps it in the spool, counted as
# pending, until the zone has room (t/17 shows it going out while nginx
# runs), or the next start.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use PBTest qw(eventually);

my $t = PBTest->new;

# the workers (not root) rewrite the journal next to itself
mkdir $t->dir . '/spool' or die "mkdir: $!";
chmod 0777, $t->dir . '/spool' or die "chmod: $!";
my $journal = $t->dir . '/spool/postback.journal';

sub conf {
    my ($zone) = @_;
    return $t->checkout_conf(zone => "pb:$zone spool=$journal",
                             callbacks => <<"EOF");
            postback_callback rcv url=http://127.0.0.1:%%PORT_rcv%%/
                attempts=100 retry=1s;
EOF
}

sub status { decode_json($t->get('/status/?limit=1000')->{body}) }
sub rcv { (grep { $_->{name} eq 'rcv' } @{ status()->{callbacks} })[0] }

# the receiver is down: everything stays pending
$t->nginx_conf(conf('8m'));
$t->start;

my $n = 200;
$t->get("/buy/x?status=APPROVED&tx=T$_") for 1 .. $n;
ok eventually(sub { rcv()->{pending} == $n }), "$n pending";
my %ids = map { $_->{id} => 1 } @{ status()->{deliveries} };
is scalar keys %ids, $n, 'their ids';

$t->stop;
ok -s $journal, 'the journal holds them';
is sprintf('%o', (stat $journal)[2] & 07777), '600',
    'readable by its owner only: it holds payloads and secret headers';

# a record torn by a crash at its end
open my $fh, '>>', $journal or die "$journal: $!";
print $fh "PBJC\0\0\1\0torn";
close $fh;

$t->allow_log(qr/torn record/);
$t->start;
ok eventually(sub { $t->error_log =~ /spool ".*": $n pending deliveries restored/ }),
    'restored at start';
like $t->error_log, qr/ends with a torn record of 12 bytes, skipped/,
    'the torn record skipped with a log line';
is rcv()->{pending}, $n, "$n pending again";

$t->receiver('rcv');
my $got = $t->wait_received(rcv => $n, 20);
my %tx = map { (decode_json($_->{body})->{fields}{tx} => 1) } @$got;
is scalar keys %tx, $n, 'every one delivered after the restart';
my %sent = map { ($_->{headers}{'webhook-id'} => 1) } @$got;
is_deeply \%sent, \%ids, 'with the webhook-ids they had before';
ok eventually(sub { rcv()->{delivered} == $n }), 'recorded as delivered';

# all finished: the next start restores nothing and compacts to nothing
$t->stop;
$t->start;
ok eventually(sub { -s $journal == 0 }), 'compacted to what is pending: nothing';
is rcv()->{pending}, 0, 'nothing pending';

# while nginx runs: past 1 MB of mostly finished records, it is rewritten
my $k = 3500;    # about 1.2 MB of journal
$t->get("/buy/x?status=APPROVED&tx=C$_") for 1 .. $k;
ok eventually(sub { rcv()->{delivered} == $k }), "$k more delivered";
like $t->error_log, qr/spool compacted from \d+ to \d+ bytes/,
    'compacted while running';
ok -s $journal < 1024 * 1024, sprintf 'the journal stays small (%d bytes)',
    -s $journal;

# both workers append to the new file: these survive a restart
$t->stop_server('rcv');
$t->get("/buy/x?status=APPROVED&tx=A$_") for 1 .. 20;
ok eventually(sub { rcv()->{pending} == 20 }), '20 pending';
$t->stop;
$t->start;
ok eventually(sub { $t->error_log =~ /spool ".*": 20 pending deliveries restored/ }),
    'all 20 appended after the compaction are restored';
$t->stop;
$t->receiver('rcv');
$t->nginx_conf(conf('8m'));
$t->start;
ok eventually(sub { rcv()->{delivered} == 20 }), '... and delivered';
$t->stop;

# a zone too small: what does not fit waits in the spool
$t->stop_server('rcv');
$t->nginx_conf(conf('64k'));
$t->start;

my $m = 400;
for my $i (1 .. $m) {
    my $r = $t->get("/buy/x?status=APPROVED&tx=S$i");
    die "checkout $i: $r->{status}\n" unless $r->{status} == 200;
}
# the last capture may come just after its client's answer
my $cb;
eventually(sub { $cb = rcv(); $cb->{pending} + $cb->{dropped} >= $m }, 5);
ok $cb->{spooled} > 0, "spooled when the zone was full ($cb->{spooled})";
is $cb->{dropped}, 0, 'none dropped';
is $cb->{pending}, $m, 'pending: every event, those in the spool included';
is $cb->{in_spool}, $cb->{spooled}, 'in_spool: those kept in the spool only';
unlike $t->error_log, qr/delivery dropped/, 'no drop in the error log';
$t->stop;

# a larger zone: all of them are restored and go out
$t->nginx_conf(conf('8m'));
$t->start;
$t->receiver('rcv');
$got = $t->wait_received(rcv => $n + $k + 20 + $m, 30);
my %s = map { my $x = decode_json($_->{body})->{fields}{tx};
              $x =~ /^S/ ? ($x => 1) : () } @$got;
is scalar keys %s, $m, 'every spooled one delivered after the next start';

$t->stop;
done_testing;
