# The ledger across reloads and concurrent actions (issue 10): a reload
# that changes the zone's size while checkouts are in flight loses none of
# them (the old workers capture them after the master read the journal);
# a reload during a transfer lets the old worker finish it, so the
# delivery is sent once and its history shows one attempt; concurrent
# manual retries of one delivery queue one retry (202), the others are
# refused (409) while it is queued or being sent, and the receiver gets
# one more request; a callback whose receiver moved (url= changed, and a
# reload) sends its pending deliveries to where it is now.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use PBTest qw(eventually);
use PBLedger qw(status callback delivery tx_counts checkout);

subtest 'a reload that changes the zone size loses no checkout in flight'
      => sub {
    my $t = PBTest->new;
    my $journal = PBLedger::spool_dir($t) . '/postback.journal';

    # the checkout service answers after 1.5 s: checkouts in flight
    $t->upstream(app => sub {
        my ($req) = @_;
        return { delay => 1.5,
                 headers => [ 'Content-Type' => 'application/json' ],
                 body => encode_json({ status => $req->{args}{status},
                                       tx => $req->{args}{tx} }) };
    });
    $t->receiver('rcv');
    $t->stop_server('rcv');

    my $conf = sub {
        my ($size) = @_;
        return $t->module_conf(<<"EOF", workers => 2);
    postback_zone pb:$size spool=$journal;
    postback_field status \$.status;
    postback_field tx \$.tx;
    postback_event \$postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback on;
            postback_callback rcv url=http://127.0.0.1:%%PORT_rcv%%/
                attempts=100 retry=1s;
        }
        location /status/ {
            postback_status;
        }
    }
EOF
    };
    $t->nginx_conf($conf->('1m'));
    $t->start;

    # $n checkouts at once, transactions $prefix$i: a handle to collect
    # their statuses from
    my $at_once = sub {
        my ($prefix, $n) = @_;
        return PBLedger::spawn($n, sub {
            checkout($t, "$prefix$_[0]", timeout => 15)->{status} // 'no answer';
        });
    };

    my $n = 20;
    my $run = $at_once->('R', $n);
    is scalar @{ $t->wait_received(app => $n, 10) }, $n,
        "$n checkouts in flight at the checkout service";

    $t->nginx_conf($conf->('2m'));
    $t->reload;
    my @statuses = $run->collect;
    is scalar(grep { $_ eq '200' } @statuses), $n,
        'each answered 200 after the reload'
        or diag "statuses: @statuses";
    is status($t)->{zone}{size}, 2 * 1024 * 1024, 'the zone is the new one';

    my $k = 5;
    my @after = $at_once->('N', $k)->collect;
    is scalar(grep { $_ eq '200' } @after), $k, "$k more checkouts after it";

    $t->receiver('rcv');
    my @want = ((map { "R$_" } 1 .. $n), (map { "N$_" } 1 .. $k));
    ok eventually(sub { keys %{ tx_counts($t, 'rcv') } >= @want }, 15),
        'all delivered while nginx runs';
    sleep 1;    # a second copy would come now
    my $tx = tx_counts($t, 'rcv');
    is_deeply [ sort grep { $tx->{$_} } @want ], [ sort @want ],
        'every transaction arrived'
        or diag 'missing: ', join ' ', grep { !$tx->{$_} } @want;
    is scalar @{ $t->received('rcv') }, scalar @want, '... each once';
    $t->stop;
};

subtest 'a reload during a transfer sends the delivery once' => sub {
    my $t = PBTest->new;
    $t->receiver(rcv => delay => 2);    # 200, after 2 s
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => 'pb:1m', workers => 1,
                                      params => 'retry=1s'));
    $t->start;

    is checkout($t, 'T1')->{status}, 200, 'a checkout';
    $t->wait_received(rcv => 1);
    my $t0 = time;
    $t->reload;    # the zone is kept: same configuration

    ok eventually(sub { callback($t, 'rcv')->{delivered} >= 1 }, 10),
        'delivered';
    sleep $t0 + 6 - time if time < $t0 + 6;
    is scalar @{ $t->received('rcv') }, 1,
        'the receiver got it once: the old worker finished its transfer';
    my ($d) = @{ status($t)->{deliveries} };
    my $full = delivery($t, $d->{id});
    is_deeply [ map { $_->{status} } @{ $full->{attempts} } ], [200],
        'its history: one attempt, answered 200';
    is $full->{state}, 'delivered', '... delivered';
    is callback($t, 'rcv')->{delivered}, 1, 'the callback counts 1 delivered';
    $t->stop;
};

subtest 'concurrent manual retries of one delivery queue one retry' => sub {
    my $t = PBTest->new;
    # T1: 500 the first time, then 200 after 1.5 s; T2: 200 after 3 s
    $t->receiver(rcv => respond => sub {
        my ($req, $n) = @_;
        my $tx = eval { decode_json($req->{body})->{fields}{tx} } // '';
        return $n == 1      ? { status => 500, body => 'no' }
             : $tx eq 'T2'  ? { status => 200, delay => 3, body => 'slow' }
             :                { status => 200, delay => 1.5, body => 'ok' };
    });
    # one worker, one transfer at a time: while T2 is sent, a retry of T1
    # stays queued (for seconds, not for an instant)
    $t->nginx_conf(PBLedger::rcv_conf($t, zone => 'pb:1m', workers => 1,
                                      params => 'attempts=1 max_conns=1'));
    $t->start;

    is checkout($t, 'T1')->{status}, 200, 'a checkout';
    my $d;
    ok eventually(sub {
        ($d) = @{ status($t)->{deliveries} };
        $d && $d->{state} eq 'failed';
    }, 10), 'its delivery failed (attempts=1, answered 500)';
    is checkout($t, 'T2')->{status}, 200, 'another checkout';
    $t->wait_received(rcv => 2);

    my $n = 20;
    my @statuses = PBLedger::spawn($n, sub {
        $t->post("/status/deliveries/$d->{id}/retry", '')->{status}
            // 'no answer';
    })->collect;
    my %by;
    $by{$_}++ for @statuses;
    is $by{202} // 0, 1, 'one retry queued: 202';
    is $by{409} // 0, $n - 1,
        'the others refused while it is queued or being sent: 409'
        or diag "statuses: @statuses";

    ok eventually(sub { delivery($t, $d->{id})->{state} eq 'delivered' }, 10),
        'delivered by the retry once T2 was sent';
    sleep 2;    # another retry would be sent by now
    is tx_counts($t, 'rcv')->{T1}, 2,
        'the receiver got T1 twice: the failure and one retry';
    is_deeply [ map { $_->{status} } @{ delivery($t, $d->{id})->{attempts} } ],
        [500, 200], 'its history: the failure and the retry';
    is callback($t, 'rcv')->{manual_retries}, 1, 'one manual retry counted';
    $t->stop;
};

subtest 'a callback moved to another receiver: its pending deliveries go there'
      => sub {
    my $t = PBTest->new;
    $t->receiver('old');
    $t->stop_server('old');
    $t->receiver('new');

    my $conf = sub {
        my ($to) = @_;
        return $t->checkout_conf(workers => 1, callbacks => <<"EOF");
            postback_callback rcv url=http://127.0.0.1:%%PORT_$to%%/hook
                attempts=100 retry=1s;
EOF
    };

    $t->nginx_conf($conf->('old'));
    $t->start;
    is checkout($t, 'M1')->{status}, 200, 'a checkout';
    ok eventually(sub { (callback($t, 'rcv') // {})->{pending} == 1 }, 10),
        'pending: its receiver is down';
    my $id = status($t)->{deliveries}[0]{id};

    # the operator fixes the URL's port and reloads
    $t->nginx_conf($conf->('new'));
    $t->reload;
    my $got = $t->wait_received(new => 1, 10);
    is scalar @$got, 1, 'sent to the receiver configured now';
    is $got->[0]{path}, '/hook', '... on the path it was made with';
    is $got->[0]{headers}{'webhook-id'}, $id, '... with its webhook-id';
    $t->stop;
};

done_testing;
