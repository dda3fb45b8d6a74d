# The ledger at the edges of nginx's life (issue 10, found in review):
# a fast stop (SIGTERM) with a transfer in flight exits at once and
# cleanly; a reload that nginx refuses changes nothing in the running
# zone: a callback disabled through the API stays disabled with its
# deliveries paused, a refused configuration without spool= does not stop
# the journaling, and one that adds spool= to a zone without one does not
# make the zone keep deliveries for a journal nobody writes; a reload that
# removes spool= while a journal write is blocked crashes no worker; a
# reload while journal writes fail (a full disk) loses none of the
# deliveries not written; a callback removed by a reload while its
# deliveries wait in the journal for room, then added again, keeps sane
# gauges, and the deliveries of the removed one end failed.
#
# Runs as root: the full filesystem is a small tmpfs mounted for the test.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use PBTest qw(eventually);
use PBLedger qw(callback spool tx_counts checkouts);

plan skip_all => 'needs root (mounts a tmpfs)' if $> != 0;

sub pending { (callback($_[0], 'rcv') // {})->{pending} // -1 }

# A harness with the receiver "rcv" known (its port) but down.
sub harness {
    my $t = PBTest->new;
    $t->receiver('rcv');
    $t->stop_server('rcv');
    return $t;
}

# The checkout configuration with two callbacks: "rcv" (with $rcv, its
# parameters), and "two", unless without_two.  zone =>, workers => as
# checkout_conf (one worker unless given).
sub two_conf {
    my ($t, %o) = @_;
    my $cbs = "            postback_callback rcv "
            . "url=http://127.0.0.1:%%PORT_rcv%%/ $o{rcv};\n";
    $cbs .= "            postback_callback two "
          . "url=http://127.0.0.1:%%PORT_two%%/ attempts=100 retry=1s;\n"
        unless $o{without_two};
    return $t->checkout_conf(
        zone => $o{zone}, workers => $o{workers} // 1, callbacks => $cbs,
        doc => '{"status":"$arg_status","tx":"$arg_tx","pad":"$http_x_pad"}');
}

subtest 'a fast stop with a transfer in flight: prompt, no alert' => sub {
    my $t = PBTest->new;
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->receiver(rcv => delay => 8);    # 200, after 8 s
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal",
                                      workers => 1,
                                      params => 'attempts=1 timeout=20s'));
    $t->start;

    is checkouts($t, ['T1']), 1, 'a checkout';
    $t->wait_received(rcv => 1, 10);
    my ($d) = @{ PBLedger::status($t)->{deliveries} };
    is $d->{state}, 'sending',
        'its transfer is in flight (the receiver answers after 8 s)';

    ok PBLedger::fast_stop($t, 5),
        'nginx -s stop: the master and its worker are gone within 5 s';
    $t->stop;    # the error log: no [alert]
};

subtest 'a refused reload leaves a callback disabled through the API '
      . 'disabled, its deliveries paused' => sub {
    my $t = PBTest->new;
    $t->receiver('rcv');
    $t->receiver('two');
    my $conf = two_conf($t, rcv => 'attempts=1', workers => 1);
    $t->nginx_conf($conf);
    $t->start;

    is $t->post('/status/callbacks/two/disable', '')->{status}, 200,
        '"two" disabled through the status API';
    is checkouts($t, [ map { "X$_" } 1 .. 5 ]), 5, '5 checkouts';
    ok eventually(sub { (callback($t, 'two')->{paused} // 0) == 5 }, 10),
        '"two": 5 paused';
    $t->wait_received(rcv => 5, 10);

    PBLedger::refused_reload($t, $conf, $conf);
    pass 'nginx refused the reload (a port it cannot bind)';

    my $two = callback($t, 'two');
    is $two->{state}, 'disabled', '"two" is still disabled';
    is $two->{disabled_reason}, 'api', '... by the API';
    is $two->{paused}, 5, '... its 5 deliveries still paused';

    # one more event: when "rcv" has it, "two" has kept it paused
    is checkouts($t, ['X6']), 1, 'one more checkout';
    $t->wait_received(rcv => 6, 10);
    ok eventually(sub { (callback($t, 'two')->{paused} // 0) == 6 }, 10),
        '"two": 6 paused';
    is scalar @{ $t->received('two') }, 0, 'nothing was sent to "two"';

    is $t->post('/status/callbacks/two/enable', '')->{status}, 200,
        '"two" enabled through the status API';
    ok eventually(sub { keys %{ tx_counts($t, 'two') } == 6 }, 20),
        '... its 6 paused deliveries go out';
    is scalar @{ $t->received('two') }, 6, '... each once';
    $t->stop;
};

subtest 'a refused reload without spool= leaves the journaling on' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    my $good = PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal",
                                  workers => 1);
    $t->nginx_conf($good);
    $t->start;

    is checkouts($t, [ map { "A$_" } 1 .. 5 ]), 5, '5 checkouts';
    ok eventually(sub { pending($t) == 5 && spool($t)->{unwritten} == 0 },
                  10), '5 pending, written';

    PBLedger::refused_reload($t, PBLedger::rcv_conf($t, zone => 'pb:1m',
                                                    workers => 1), $good);
    pass 'nginx refused a reload without spool= (a port it cannot bind)';

    is checkouts($t, [ map { "B$_" } 1 .. 5 ]), 5, '5 checkouts after it';
    ok eventually(sub { pending($t) == 10
                        && (spool($t) // {})->{unwritten} == 0 }, 10),
        '10 pending, all written';

    $t->stop;
    $t->start;
    $t->receiver('rcv');
    my @want = map { ("A$_", "B$_") } 1 .. 5;
    ok eventually(sub { keys %{ tx_counts($t, 'rcv') } >= 10
                        && pending($t) == 0 }, 20),
        'after a restart, all delivered';
    my $tx = tx_counts($t, 'rcv');
    is_deeply [ sort grep { $tx->{$_} } @want ], [ sort @want ],
        'all 10 arrived'
        or diag 'missing: ', join ' ', grep { !$tx->{$_} } @want;
    is scalar @{ $t->received('rcv') }, 10, '... each once';
    $t->stop;
};

subtest 'a refused reload that adds spool= keeps no delivery for a '
      . 'journal nobody writes' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    my $good = PBLedger::rcv_conf($t, zone => 'pb:64k', workers => 1);
    $t->nginx_conf($good);
    $t->start;

    PBLedger::refused_reload($t, PBLedger::rcv_conf($t,
        zone => "pb:64k spool=$journal", workers => 1), $good);
    pass 'nginx refused a reload with spool= (a port it cannot bind)';

    # the zone holds far fewer than 600 pending deliveries: without a
    # spool, those it has no room for are refused (dropped, each named in
    # the error log), as with no reload at all; none may wait for the
    # journal of the refused configuration
    my $n = 600;
    is checkouts($t, [ map { "R$_" } 1 .. $n ]), $n,
        "$n checkouts, the receiver down";
    ok callback($t, 'rcv')->{dropped} > 0,
        'the zone was full: some were refused';
    $t->receiver('rcv');
    ok eventually(sub { my $cb = callback($t, 'rcv');
                        $cb->{pending} == 0
                        && $cb->{delivered} + $cb->{dropped} == $n }, 20),
        'none left pending';
    my $cb = callback($t, 'rcv');
    is $cb->{in_spool}, 0, 'none in_spool';
    is $cb->{spooled}, 0, 'none went to a spool';
    is $cb->{delivered} + $cb->{dropped}, $n,
        "each delivered ($cb->{delivered}) or dropped ($cb->{dropped})";
    my @dropped = map { /tx="(R\d+)"/ }
                  grep { /delivery dropped, zone full/ }
                  split /\n/, $t->error_log;
    is scalar @dropped, $cb->{dropped},
        'each dropped one named in the error log';
    my $tx = tx_counts($t, 'rcv', qr/^R\d+$/);
    is scalar keys %$tx, $cb->{delivered},
        'the receiver got each delivered one';
    is scalar(grep { $_ > 1 } values %$tx), 0, '... once';
    is_deeply [ sort keys %$tx, @dropped ], [ sort map { "R$_" } 1 .. $n ],
        "all $n checkouts accounted for: delivered or named as dropped";
    $t->stop;
};

subtest 'a reload that removes spool= while a journal write is blocked '
      . 'crashes no worker' => sub {
    my $t = harness();
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:8m spool=$journal",
                                      workers => 1));
    $t->start;

    is checkouts($t, ['P0']), 1, 'a checkout';
    ok eventually(sub { -f $journal }, 10), 'the journal is a regular file';

    # the journal's path becomes a FIFO nobody reads; 1 KB of document
    # each, with the receiver down: past the 64 KiB the FIFO holds, the
    # journal write blocks
    my $fifo = PBLedger::stalled_fifo($journal);
    my $n = 150;
    is checkouts($t, [ map { "P$_" } 1 .. $n ], pad => 1000, timeout => 3),
        $n, "$n checkouts";
    ok eventually(sub { pending($t) == $n + 1
                        && spool($t)->{unwritten} > 0 }, 10),
        sprintf '%d pending, %d not written: the journal write is blocked',
        pending($t), spool($t)->{unwritten};

    # the same zone, without spool=
    my ($old) = $t->worker_pids;
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => 'pb:8m', workers => 1));
    $t->reload;
    pass 'reloaded without spool=';

    # the old worker's write ends once the FIFO is read: it may then leave
    $fifo->drain;
    ok eventually(sub { PBLedger::worker_exit($t, $old) }, 20),
        'the old worker exited';
    my $exit = PBLedger::worker_exit($t, $old) // '';
    unlike $exit, qr/exited on signal/, '... not on a signal';
    is scalar(grep { /exited on signal/ } split /\n/, $t->error_log), 0,
        'no worker crashed';

    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0 }, 20),
        'the zone kept the pending deliveries: all went out';
    my $tx = tx_counts($t, 'rcv', qr/^P\d+$/);
    is scalar keys %$tx, $n + 1, 'the receiver got all ' . ($n + 1);
    is scalar(grep { $_ > 1 } values %$tx), 0, '... each once';
    $t->stop;
    $fifo->stop;
};

subtest 'a reload while journal writes fail loses no delivery' => sub {
    my $t = harness();
    my $fs = PBLedger::tmpfs('1m');
    my $journal = $fs->dir . '/postback.journal';
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => "pb:1m spool=$journal",
                                      workers => 1));
    $t->start;
    $fs->fill;

    # records larger than a page: none fits in what the filled
    # filesystem has left
    my $n = 10;
    is checkouts($t, [ map { "W$_" } 1 .. $n ], pad => 5000), $n,
        "$n checkouts on a full disk";
    ok eventually(sub { pending($t) == $n
                        && spool($t)->{unwritten} == $n }, 10),
        "$n pending, none written";

    my ($old) = $t->worker_pids;
    $t->reload;    # the same configuration: the zone is kept
    ok eventually(sub { PBLedger::worker_exit($t, $old) }, 20),
        'the old worker exited';
    my @lost = grep { /lost, not written/ } split /\n/, $t->error_log;
    is scalar @lost, 0, 'no delivery named as lost: the old worker left '
                      . 'them to the new one'
        or diag join "\n", @lost;
    is pending($t), $n, "$n still pending";
    is callback($t, 'rcv')->{failed}, 0, 'none failed';

    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0 }, 20), 'none left pending';
    my $tx = tx_counts($t, 'rcv', qr/^W\d+$/);
    is scalar keys %$tx, $n, "the receiver got all $n";
    is scalar(grep { $_ > 1 } values %$tx), 0, '... each once';
    $fs->unfill;
    $t->stop;
    $fs->unmount;
};

subtest 'a callback removed while its deliveries wait in the journal, '
      . 'then added again: sane gauges' => sub {
    my $t = harness();
    $t->receiver('two');
    $t->stop_server('two');
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    my %conf = (zone => "pb:64k spool=$journal",
                rcv => 'attempts=100 retry=1s');
    $t->nginx_conf(two_conf($t, %conf));
    $t->start;

    my $n = 300;
    is checkouts($t, [ map { "S$_" } 1 .. $n ]), $n,
        "$n checkouts, both receivers down";
    my $two = callback($t, 'two');
    is $two->{pending}, $n, "\"two\": $n pending";
    ok $two->{in_spool} > 0,
        "... $two->{in_spool} of them waiting in the journal for room";

    $t->nginx_conf(two_conf($t, %conf, without_two => 1));
    $t->reload;
    is callback($t, 'two')->{state}, 'removed', 'a reload removed "two"';

    # rcv's deliveries go out; two's come in from the journal as room
    # frees, and end failed
    $t->receiver('rcv');
    ok eventually(sub { pending($t) == 0
                        && (spool($t) // {})->{live_bytes} == 0 }, 30),
        'rcv has none pending; the journal holds nothing live';
    is scalar keys %{ tx_counts($t, 'rcv', qr/^S\d+$/) }, $n,
        "rcv got all $n";

    $t->nginx_conf(two_conf($t, %conf));
    $t->reload;
    $t->receiver('two');

    # sampled until they settle: never negative, never past what was
    # captured
    my @bad;
    my $settled = eventually(sub {
        my $cb = callback($t, 'two') // return 0;
        my ($pending, $in_spool) = @$cb{qw(pending in_spool)};
        push @bad, "pending $pending in_spool $in_spool"
            unless 0 <= $in_spool && $in_spool <= $pending && $pending <= $n;
        return $pending == 0 && $in_spool == 0;
    }, 10);
    is scalar @bad, 0, '"two" added again: 0 <= in_spool <= pending <= '
                     . $n
        or diag 'seen: ', join '; ', @bad[0 .. ($#bad < 4 ? $#bad : 4)];
    ok $settled, '... none of the old ones pending, none in_spool';
    $two = callback($t, 'two');
    is $two->{failed}, $n, "... $n failed: a reload removed their callback";

    is checkouts($t, ['S_new']), 1, 'one more checkout';
    ok eventually(sub { tx_counts($t, 'two')->{S_new} }, 10),
        '"two" got it';
    is_deeply [ keys %{ tx_counts($t, 'two') } ], ['S_new'],
        '... and none of the old ones';
    $t->stop;
};

done_testing;
