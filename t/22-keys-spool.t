# postback_key's table with spool=: each change is a key record in the
# journal, so that a stop and a start keep what the zone knew:
#
# - a status seen before the restart is still a repeat after it (counted
#   duplicate, nothing sent), a new status for the key still goes out;
# - a timeout event armed before the restart fires after it; one whose
#   key changed before the restart stays cancelled; a timeout that fired
#   before it made its event the key's last one;
# - keys evicted for room leave the journal too (not restored), and a
#   compaction keeps the live key records and drops the superseded ones;
# - the same after SIGKILL of every nginx process;
# - a timeout event that fired before the restart, still retrying, is
#   delivered after it, though its key changed since;
# - a key that a timeout event waits on is not evicted for room, so that
#   its change in time still cancels it.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use PBTest qw(eventually);
use PBLedger;

sub conf {
    my ($t, %o) = @_;
    my $dir = $t->dir;
    return $t->module_conf(<<"EOF", workers => 2);
    postback_zone pb:$o{zone} spool=$dir/spool/postback.journal;
    postback_field status \$.status;
    postback_field tx \$.tx;
    postback_event \$postback_status;
    postback_key \$postback_tx;
    postback_timeout_event ABANDONED after=2s from=STARTED;
    postback_callback rcv url=http://127.0.0.1:%%PORT_rcv%%/
        events=APPROVED,REFUNDED,ABANDONED;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
        }
        location /doc/ {
            default_type application/json;
            return 200 '{"status":"\$arg_status","tx":"\$arg_tx","pad":"\$arg_pad"}';
        }
        location /status/ {
            postback_status;
        }
    }
EOF
}

sub buy {
    my ($t, $status, $tx, $pad) = @_;
    return $t->get("/buy/x?status=$status&tx=$tx" . ($pad ? "&pad=$pad" : ''));
}

# buy(), once its capture is over (it comes after the client's last
# bytes): two updates of one key in a row are taken in their order
sub buy_in_order {
    my ($t, @args) = @_;
    $t->counted('/status/', sub { buy($t, @args) });
}

sub capture { PBLedger::status($_[0])->{capture} }

# every journal write done: nothing unwritten, no key change held
sub settled {
    my ($t) = @_;
    return eventually(sub { (PBLedger::spool($t) // {})->{unwritten} == 0 },
                      10) && sleep 1.2;
}

sub received_events {
    my ($t) = @_;
    return [ map { my $b = decode_json($_->{body});
                   "$b->{fields}{tx} $b->{event}" } @{ $t->received('rcv') } ];
}

subtest 'a stop and a start keep the keys' => sub {
    my $t = PBTest->new;
    PBLedger::spool_dir($t);
    $t->receiver('rcv');
    $t->nginx_conf(conf($t, zone => '1m'));
    $t->start;

    buy($t, 'APPROVED', 'K1');
    buy($t, 'STARTED', 'K2');          # fires after the restart
    buy_in_order($t, 'STARTED', 'K3');
    buy_in_order($t, 'APPROVED', 'K3');    # cancels K3's before the restart
    $t->wait_received(rcv => 2, 10);
    settled($t);

    $t->stop;
    $t->start;
    # until the journal's first read, the keys are not known yet
    ok eventually(sub { PBLedger::status($t)->{zone}{keys} >= 3 }, 10),
        'the keys read back';

    my $before = capture($t);
    buy_in_order($t, 'APPROVED', 'K1');    # a repeat
    buy_in_order($t, 'APPROVED', 'K3');    # a repeat
    buy_in_order($t, 'REFUNDED', 'K1');    # news
    ok eventually(sub { capture($t)->{skipped}{duplicate}
                        - $before->{skipped}{duplicate} == 2 }, 10),
        'the statuses seen before the restart are repeats after it';

    $t->wait_received(rcv => 4, 10);
    $t->wait_received(rcv => 5, 1.5);
    is_deeply [ sort @{ received_events($t) } ],
        [ 'K1 APPROVED', 'K1 REFUNDED', 'K2 ABANDONED', 'K3 APPROVED' ],
        "K2's timeout fired after the restart, K3's stayed cancelled, "
        . 'K1 REFUNDED went out';

    # ABANDONED is now K2's last event
    $before = capture($t);
    buy($t, 'ABANDONED', 'K2');
    ok eventually(sub { capture($t)->{skipped}{duplicate}
                        - $before->{skipped}{duplicate} == 1 }, 10),
        "the fired timeout is K2's last event";

    # once more across SIGKILL
    buy($t, 'APPROVED', 'K4');
    $t->wait_received(rcv => 5, 10);
    settled($t);
    $t->kill_all;
    $t->start;
    ok eventually(sub { PBLedger::status($t)->{zone}{keys} >= 4 }, 10),
        'the keys read back after SIGKILL';
    $before = capture($t);
    buy($t, 'APPROVED', 'K4');
    ok eventually(sub { capture($t)->{skipped}{duplicate}
                        - $before->{skipped}{duplicate} == 1 }, 10),
        'after SIGKILL too';
    $t->wait_received(rcv => 6, 1);
    is scalar @{ $t->received('rcv') }, 5, 'nothing sent twice';
    $t->stop;
};

subtest 'evicted keys leave the journal; compaction keeps the live ones' => sub {
    my $t = PBTest->new;
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';
    $t->receiver('rcv');
    $t->nginx_conf(conf($t, zone => '1m'));
    $t->start;

    # each key twice (STARTED, then APPROVED with a large document): past
    # 1 MB of journal, compacted; the zone evicts keys for room
    my $n = 1200;
    for my $i (1 .. $n) {
        buy($t, 'STARTED', "E$i");
        buy($t, 'APPROVED', "E$i", 'p' x 700);
    }
    $t->wait_received(rcv => $n, 30);
    settled($t);
    ok eventually(sub { (PBLedger::spool($t) // {})->{compactions} > 0 }, 10),
        'the journal was compacted';
    settled($t);
    my $zone = PBLedger::status($t)->{zone};
    ok $zone->{keys_evicted} > 0,
        "keys evicted for room ($zone->{keys_evicted}, $zone->{keys} kept)";

    $t->stop;
    $t->start;
    ok eventually(sub { PBLedger::status($t)->{zone}{keys} == $zone->{keys} },
                  10),
        "the restart restored the $zone->{keys} keys the zone kept, not the "
        . 'evicted ones';
    $t->stop;
};

subtest 'a fired timeout event, still retrying, survives a restart' => sub {
    my $t = PBTest->new;
    PBLedger::spool_dir($t);
    $t->receiver('rcv');
    $t->nginx_conf(conf($t, zone => '1m'));
    $t->start;
    $t->stop_server('rcv');

    buy($t, 'STARTED', 'R1');
    ok eventually(sub { capture($t)->{timeout_events} == 1 }, 10),
        'ABANDONED fired for R1, its receiver down';
    buy($t, 'APPROVED', 'R1');
    settled($t);

    $t->stop;
    $t->start;
    $t->receiver('rcv');
    $t->wait_received(rcv => 2, 20);
    is_deeply [ sort @{ received_events($t) } ],
        [ 'R1 ABANDONED', 'R1 APPROVED' ],
        'both went out after the restart';
    $t->stop;
};

subtest 'a key a timeout event waits on is not evicted' => sub {
    my $t = PBTest->new;
    PBLedger::spool_dir($t);
    $t->receiver('rcv');
    $t->nginx_conf(conf($t, zone => '256k'));
    $t->start;

    buy_in_order($t, 'STARTED', 'P1');
    buy_in_order($t, 'APPROVED', 'P1');    # in time: cancels ABANDONED
    # keys only (no callback takes WAITING): the least recently seen go
    buy($t, 'WAITING', "F$_") for 1 .. 2500;
    my $zone = PBLedger::status($t)->{zone};
    ok $zone->{keys_evicted} > 0, "keys evicted ($zone->{keys_evicted})";

    ok eventually(sub { capture($t)->{timeout_events_cancelled} == 1 }, 10),
        "P1's ABANDONED cancelled";
    $t->wait_received(rcv => 2, 1);
    is_deeply received_events($t), [ 'P1 APPROVED' ], 'only APPROVED sent';
    $t->stop;
};

done_testing;
