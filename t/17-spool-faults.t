# The spool journal when its disk misbehaves (issue 10): `nginx -t` while
# nginx runs leaves the journal alone; a full filesystem at start neither
# stops nginx nor loses the journal; a journal write that fails while
# nginx runs is counted (spool.write_errors, spool.unwritten), written
# once there is room again, and a delivery still unwritten when nginx
# stops is named in the error log; deliveries kept in the spool for want
# of room in the zone count as pending and go out while nginx runs, and
# the journal is compacted once they are finished; what was written
# survives a SIGKILL of every nginx process; a journal that blocks (a
# stalled disk: a FIFO nobody reads) holds up no checkout.
#
# Runs as root: the full filesystem is a small tmpfs mounted for the test.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use PBTest qw(eventually);
use PBLedger qw(callback delivery metrics spool tx_counts checkout checkouts);

plan skip_all => 'needs root (mounts a tmpfs)' if $> != 0;

my $MB = 1024 * 1024;

sub pending { (callback($_[0], 'rcv') // {})->{pending} // -1 }

# A harness with the receiver "rcv" known (its port) but down.
sub harness {
    my $t = PBTest->new;
    $t->receiver('rcv');
    $t->stop_server('rcv');
    return $t;
}

subtest 'nginx -t never touches the journal' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal",
                                      workers => 1));
    $t->start;

    is checkouts($t, [ map { "A$_" } 1 .. 10 ]), 10, '10 checkouts';
    ok eventually(sub { pending($t) == 10 }, 10), '10 pending';

    my $before = PBLedger::journal_state($journal);
    my ($rc, $out) = $t->test_conf;
    is $rc, 0, 'nginx -t accepts the configuration' or diag $out;
    my $after = PBLedger::journal_state($journal);
    is $after->{ino}, $before->{ino},
        'nginx -t left the journal in place (same inode)';
    is $after->{md5}, $before->{md5}, '... and its content as it was';

    is checkouts($t, [ map { "B$_" } 1 .. 10 ]), 10, '10 more checkouts';
    ok eventually(sub { pending($t) == 20 }, 10), '20 pending';

    $t->stop;
    $t->start;
    $t->receiver('rcv');
    ok eventually(sub { my $cb = callback($t, 'rcv');
                        $cb->{pending} == 0 && $cb->{delivered} > 0 }, 20),
        'the restored deliveries went out';
    my $tx = tx_counts($t, 'rcv');
    is scalar keys %$tx, 20, 'all 20 delivered after a restart'
        or diag 'missing: ', join ' ', grep { !$tx->{$_} }
                                       map { ("A$_", "B$_") } 1 .. 10;
    $t->stop;
};

subtest 'a full spool filesystem does not stop nginx from starting' => sub {
    my $t = harness();
    my $fs = PBLedger::tmpfs('256k');
    my $journal = $fs->dir . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal"));
    $t->start;
    is checkouts($t, [ map { "F$_" } 1 .. 20 ]), 20, '20 checkouts';
    ok eventually(sub { pending($t) == 20 }, 10), '20 pending';
    $t->stop;

    my $before = PBLedger::journal_state($journal);
    ok $before && $before->{size} > 0, 'the journal holds them';
    ok $fs->fill > 0, 'the spool filesystem filled up to the last block';

    my $started = eval { $t->start; 1 };
    ok $started, 'nginx starts while the spool filesystem is full'
        or diag $@;
    my $after = PBLedger::journal_state($journal);
    is_deeply [ @$after{qw(size md5)} ], [ @$before{qw(size md5)} ],
        'the journal is kept as it was';
    if (!$started) {
        $fs->unfill;
        $t->stop;    # the error log: no [emerg]
        return;
    }

    ok eventually(sub { pending($t) == 20 }, 5),
        'the 20 pending deliveries restored';
    $t->receiver('rcv');
    ok eventually(sub { keys %{ tx_counts($t, 'rcv') } == 20 }, 20),
        '... and delivered';
    $fs->unfill;
    $t->stop;
    $fs->unmount;
};

subtest 'a journal write that fails while running: counted, retried, '
      . 'its loss named' => sub {
    my $t = harness();
    my $fs = PBLedger::tmpfs('1m');
    my $journal = $fs->dir . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal"));
    # records larger than a page: none fits in what is left of the
    # journal's last page once the filesystem is full
    my %big = (pad => 5000);
    $t->start;
    $fs->fill;

    my $n = 20;
    is checkouts($t, [ map { "W$_" } 1 .. $n ], %big), $n,
        "$n checkouts answered while the journal cannot be written";
    ok eventually(sub { pending($t) == $n }, 10), "$n pending";

    my $spool = spool($t);
    ok $spool, 'the status has a spool object' or diag 'spool: null';
    # the counters may move just after the checkouts answered
    eventually(sub { $spool = spool($t);
                     ($spool->{write_errors} // 0) > 0
                     && ($spool->{unwritten} // 0) > 0 }, 5) if $spool;
    $spool //= {};
    ok(($spool->{write_errors} // 0) > 0,
        'spool.write_errors counts the failed writes ('
        . ($spool->{write_errors} // 'undef') . ')');
    ok(($spool->{unwritten} // 0) > 0,
        'spool.unwritten counts the deliveries not written ('
        . ($spool->{unwritten} // 'undef') . ')');
    my $m = metrics($t);
    ok(($m->{postback_spool_write_errors_total} // 0) > 0,
        'postback_spool_write_errors_total');
    ok(($m->{postback_spool_unwritten} // 0) > 0, 'postback_spool_unwritten');

    $fs->unfill;
    ok eventually(sub { my $s = spool($t);
                        $s && defined $s->{unwritten} && $s->{unwritten} == 0 }, 10),
        'written once there is room again, while nginx runs';

    $t->stop;
    $t->start;
    ok eventually(sub { pending($t) == $n }, 5),
        "all $n restored after a restart (pending: " . pending($t) . ')';

    # delivered; with nothing pending, the next start begins with no journal
    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0 }, 20), 'none left pending';
    $t->stop_server('rcv');
    $t->stop;
    unlink $journal;
    $t->start;
    $fs->fill;

    my $k = 10;
    my @lost_tx = map { "L$_" } 1 .. $k;
    is checkouts($t, \@lost_tx, %big), $k, "$k checkouts on a full disk";
    ok eventually(sub { pending($t) == $k }, 10), "$k pending";
    my $from = length $t->error_log;
    $t->stop;    # still full

    my @lines = grep { /lost, not written to spool/ }
                split /\n/, substr($t->error_log, $from);
    is scalar @lines, $k, "$k deliveries named as lost when nginx stopped";
    my %named;
    for (@lines) {
        my ($tx) = /\[error\] .*postback: delivery msg_[0-9a-f]{24} lost, not written to spool "\Q$journal\E": callback "rcv", event "APPROVED", fields: status="APPROVED" tx="(L\d+)"/
            or next;
        $named{$tx}++;
    }
    is_deeply [ sort keys %named ], [ sort @lost_tx ],
        'one [error] line for each, with its callback, event and fields'
        or diag join "\n", @lines;
    $fs->unfill;
    $fs->unmount;
};

subtest 'deliveries kept in the spool for want of room go out while nginx '
      . 'runs; the journal is then compacted' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:64k spool=$journal"));
    $t->start;

    my $n = 400;
    is checkouts($t, [ map { "S$_" } 1 .. $n ]), $n, "$n checkouts";
    # the last capture may come just after its client's answer
    my $cb;
    eventually(sub { $cb = callback($t, 'rcv');
                     $cb->{pending} + $cb->{dropped} >= $n }, 5);
    is $cb->{dropped}, 0, 'none dropped';
    ok $t->error_log !~ /delivery dropped/, 'no drop in the error log';
    is $cb->{pending}, $n, 'pending counts those kept in the spool too';
    ok(($cb->{in_spool} // 0) > 0,
        'in_spool: those kept in the spool only ('
        . ($cb->{in_spool} // 'undef') . ')');
    ok(($cb->{in_spool} // 0) <= $cb->{pending}, '... a part of pending');
    ok((metrics($t)->{'postback_in_spool{callback="rcv"}'} // 0) > 0,
        'postback_in_spool');

    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0 }, 30), 'nothing left pending';
    my $tx = tx_counts($t, 'rcv', qr/^S\d+$/);
    is scalar keys %$tx, $n, "all $n delivered without a restart";
    is scalar(grep { $_ > 1 } values %$tx), 0, '... each once';

    # bounded: the journal passes 1 MB, then every delivery is finished
    $t->stop_server('rcv');
    my $k = 1500;
    is checkouts($t, [ map { "C$_" } 1 .. $k ], pad => 600), $k,
        "$k more checkouts with the receiver down";
    ok -s $journal > $MB, sprintf 'the journal passed 1 MB (%d bytes)',
        -s $journal;
    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0 }, 30), 'nothing left pending';
    $tx = tx_counts($t, 'rcv', qr/^C\d+$/);
    is scalar keys %$tx, $k, "all $k delivered";
    ok eventually(sub { -s $journal < $MB }, 10),
        sprintf 'the journal was compacted below 1 MB (%d bytes)', -s $journal;
    ok $t->error_log =~ /\[info\] .*spool compacted/,
        '"spool compacted" at [info] in the error log';
    ok((spool($t) // {})->{compactions}, 'counted in spool.compactions');
    $t->stop;
};

subtest 'SIGKILL of every nginx process: what was written survives' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal"));
    $t->start;

    my $n = 50;
    is checkouts($t, [ map { "K$_" } 1 .. $n ]), $n, "$n checkouts";
    ok eventually(sub { pending($t) == $n && spool($t)->{unwritten} == 0 },
                  10), "$n pending, all written";

    $t->kill_all;
    $t->start;
    $t->receiver('rcv');
    # pending is 0 too before the journal's first read: wait for the sends
    $t->wait_received(rcv => $n, 20);
    ok eventually(sub { pending($t) == 0 }, 20), 'nothing left pending';
    my $tx = tx_counts($t, 'rcv', qr/^K\d+$/);
    is scalar keys %$tx, $n, "all $n delivered after the restart";
    is scalar(grep { $_ > 1 } values %$tx), 0, '... each once';
    $t->stop;
};

subtest 'a stalled disk stalls no client' => sub {
    my $t = PBTest->new;
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->receiver('rcv');
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:8m spool=$journal"));
    $t->start;

    # written as long as its delivery waits: the receiver is down a moment
    $t->stop_server('rcv');
    is checkouts($t, ['P0']), 1, 'a checkout';
    ok eventually(sub { -f $journal }, 10), 'the journal is a regular file';
    $t->receiver('rcv');
    $t->wait_received(rcv => 1, 10);

    # the journal's path becomes a FIFO that nobody reads; after a reload
    # the workers write into it (they open the journal by its path)
    my $fifo = PBLedger::stalled_fifo($journal);
    $t->reload;

    # 1 KB of document each: past what the FIFO holds.  The receiver
    # is down meanwhile, so that each delivery's record must be written
    # (one delivered before its turn to be written needs none)
    $t->stop_server('rcv');
    my $n = 300;
    my ($answered, $hang) = (0, '');
    for my $i (1 .. $n) {
        my $r = checkout($t, "P$i", pad => 1000, timeout => 3);
        if (($r->{status} // 0) != 200) {
            $hang = "checkout P$i: " . ($r->{error} // $r->{status});
            last;
        }
        $answered++;
    }
    is $answered, $n, "all $n checkouts answered 200 within 3 s each"
        or diag "stopped at the first one that hung: $hang";
    $t->receiver('rcv');
    if ($answered == $n) {
        $t->wait_received(rcv => $n + 1, 20);
    }
    my $tx = tx_counts($t, 'rcv', qr/^P[1-9]/);
    is scalar keys %$tx, $n, "the receiver got all $n";

    # A pipe holds 16 pages, each a record or more (how many depends on
    # the records' size): past them the writers were stalled; drained, they
    # go on until nothing waits to be written
    $fifo->drain;
    ok eventually(sub { $fifo->bytes > 16 * 1000
                        && (spool($t) // {})->{unwritten} == 0 }, 10),
        sprintf 'the stalled journal written once drained (%d bytes read)',
        $fifo->bytes;
    $t->stop;
    $fifo->stop;
};

done_testing;
