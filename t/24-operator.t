# The operator's side of a callback's life: a removed callback's history
# stays, marked removed, its waiting deliveries end at once as failed
# ("callback removed") and a retry of one says why it cannot go; a
# callback's switch (through the API or a rule) survives a restart with
# spool= unless its url= was edited meanwhile; the error log tells a
# callback's state changes at warn, each attempt at info only; and with
# history=, finished deliveries (request, attempts, answers) survive a
# restart, the last ones that fit in its size, and can be searched.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);
use PBTest qw(eventually);

my $t = PBTest->new;

mkdir $t->dir . '/spool' or die "mkdir: $!";
chmod 0777, $t->dir . '/spool' or die "chmod: $!";
my $journal = $t->dir . '/spool/postback.journal';

$t->receiver('members');
$t->receiver(gone => status => 410);
$t->receiver(noisy => respond => sub {
    my ($req, $n) = @_;
    return { status => $n <= 20 ? 500 : 200, body => "noisy $n" };
});

my $members_path = '/';

sub conf {
    my (%o) = @_;
    $o{history} //= 'history=1m';
    my $old = $o{without_old} ? '' : <<'EOF';
            postback_callback old url=http://127.0.0.1:%%PORT_nobody%%/
                attempts=5 retry=1h events=OLD;
EOF
    return $t->checkout_conf(zone => "pb:4m spool=$journal $o{history}",
                             callbacks => <<"EOF");
            postback_callback members
                url=http://127.0.0.1:%%PORT_members%%$members_path
                events=APPROVED;
            postback_callback gone url=http://127.0.0.1:%%PORT_gone%%/
                events=GONE;
            postback_callback noisy url=http://127.0.0.1:%%PORT_noisy%%/
                events=NOISY attempts=30 retry=50ms;
$old
EOF
}

sub status { decode_json($t->get('/status/?limit=1000')->{body}) }
sub callback {
    my ($name) = @_;
    return (grep { $_->{name} eq $name } @{ status()->{callbacks} })[0];
}
sub deliveries_of {
    my ($name) = @_;
    return grep { $_->{callback} eq $name } @{ status()->{deliveries} };
}

$t->nginx_conf(conf());
$t->start;

subtest 'a removed callback: history kept, waiting ones end at once' => sub {
    $t->get("/buy/x?status=OLD&tx=O$_") for 1 .. 2;
    ok eventually(sub {
        2 == grep { $_->{state} eq 'pending' && @{ $_->{attempts} } == 1 }
             deliveries_of('old');
    }), 'two pending, their next attempt in an hour';

    $t->nginx_conf(conf(without_old => 1));
    $t->reload;

    my @old;
    ok eventually(sub {
        @old = deliveries_of('old');
        2 == grep { $_->{state} eq 'failed' } @old;
    }, 5), 'both failed at once, not in an hour';
    is_deeply [ map { $_->{ended_because} } @old ],
        [ 'callback removed', 'callback removed' ], '... saying why';
    ok !(grep { !$_->{callback_removed} } @old), '... marked removed';
    is callback('old')->{state}, 'removed',
        'the callback is listed as removed while its history lasts';
    like $t->error_log,
        qr/2 deliveries of callbacks no longer configured ended failed/,
        'said in the error log';

    my $r = $t->post("/status/deliveries/$old[0]{id}/retry", '');
    is $r->{status}, 409, 'a retry of one: 409';
    like decode_json($r->{body})->{error}, qr/callback was removed/,
        '... saying why';
};

subtest 'a disabled callback stays so across a restart with spool=' => sub {
    is $t->post('/status/callbacks/members/disable', '')->{status}, 200,
        'members disabled';
    $t->get('/buy/x?status=GONE&tx=G1');
    ok eventually(sub { callback('gone')->{state} eq 'disabled' }),
        'gone disabled by a 410';

    $t->stop;
    $t->start;

    ok eventually(sub { callback('members')->{state} eq 'disabled' }),
        'members still disabled after a restart';
    is callback('members')->{disabled_reason}, 'api', '... through the API';
    is callback('gone')->{disabled_reason}, 'gone', 'gone too, by its 410';

    $t->get('/buy/x?status=APPROVED&tx=A1');
    ok eventually(sub { callback('members')->{paused} == 1 }),
        'an event for members is kept paused';
    sleep 0.3;
    is scalar @{ $t->received('members') }, 0, 'nothing sent';

    # an edited url= while nginx is stopped: another receiver, enabled
    $members_path = '/v2';
    $t->stop;
    $t->nginx_conf(conf(without_old => 1));
    $t->start;

    my $got = $t->wait_received(members => 1);
    is scalar @$got, 1, 'the url was edited: enabled, the paused one sent';
    is $got->[0]{path}, '/v2', '... to the new url';
    is callback('members')->{state}, 'enabled', 'members enabled';
    is callback('gone')->{state}, 'disabled', 'gone untouched';

    is $t->post('/status/callbacks/gone/enable', '')->{status}, 200,
        'gone enabled through the API';
    $t->stop;
    $t->start;
    sleep 0.5;
    is callback('gone')->{state}, 'enabled', '... and still after a restart';
};

subtest 'the error log: state changes at warn, attempts at info' => sub {
    $t->get('/buy/x?status=NOISY&tx=N1');
    ok eventually(sub {
        (grep { $_->{state} eq 'delivered' } deliveries_of('noisy')) == 1;
    }, 15), 'delivered at the 21st attempt';

    my @lines = grep { /callback "noisy"/ } split /\n/, $t->error_log;
    my @warn = grep { /\[warn\]/ } @lines;
    my @info = grep { /\[info\].*attempt failed/ } @lines;
    is scalar @info, 20, 'each failed attempt at info';
    is scalar @warn, 2, 'two lines at warn' or diag join "\n", @warn;
    like $warn[0], qr/callback "noisy" failing: delivery \S+ got status 500/,
        '... its first failure';
    like $warn[1], qr/callback "noisy" recovered/, '... its recovery';
};

subtest 'history=: finished deliveries survive a restart' => sub {
    my %before = map { $_->{id} => $_ }
                 grep { $_->{state} ne 'pending' && $_->{state} ne 'paused' }
                 @{ status()->{deliveries} };
    my ($noisy) = grep { $_->{callback} eq 'noisy' } values %before;
    ok $noisy && @{ $noisy->{attempts} } == 21, 'noisy: 21 attempts';

    $t->stop;
    $t->nginx_conf(conf(without_old => 1));
    $t->start;

    my %after;
    ok eventually(sub {
        %after = map { $_->{id} => $_ } @{ status()->{deliveries} };
        !grep { !$after{$_} } grep { $before{$_}{callback} ne 'old' }
             keys %before;
    }), 'every finished one of a configured callback is there again';
    my $again = $after{ $noisy->{id} };
    is $again->{state}, 'delivered', '... noisy\'s as it ended';
    is_deeply [ map { $_->{status} } @{ $again->{attempts} } ],
        [ map { $_->{status} } @{ $noisy->{attempts} } ],
        '... with its 21 attempts and their answers';
    is $again->{attempts}[-1]{response}, 'noisy 21', '... the last answer';
    is callback('noisy')->{delivered}, 0,
        'the counters count what happened since the start';

    my $found = decode_json($t->get('/status/?q=N1')->{body})->{deliveries};
    is_deeply [ map { $_->{id} } @$found ], [ $noisy->{id} ],
        '?q= finds it by its field value';

    # a history of 1 KB: what fits of the last ones (noisy's 21 attempts
    # alone take more; t/unit has which are kept)
    my $finished = grep { $_->{state} ne 'pending' && $_->{state} ne 'paused' }
                   values %after;
    $t->stop;
    $t->nginx_conf(conf(without_old => 1, history => 'history=1k'));
    $t->start;
    # the history is read back from the journal after the start
    my @kept;
    eventually(sub {
        @kept = grep { $_->{state} ne 'pending' && $_->{state} ne 'paused' }
                @{ status()->{deliveries} };
    }, 5);
    ok @kept >= 1 && @kept < $finished,
        'history=1k: fewer kept (' . @kept . " of $finished)";
    ok !(grep { $_->{id} eq $noisy->{id} } @kept),
        '... not noisy\'s, too big for it';
};

subtest 'history=: a delivered one is not sent again after SIGKILL' => sub {
    my $before = scalar @{ $t->received('members') };
    $t->get("/buy/x?status=APPROVED&tx=K$_") for 1 .. 20;
    my $got = $t->wait_received(members => $before + 20);
    is scalar @$got, $before + 20, 'twenty delivered at once';
    ok eventually(sub {
        my $sp = status()->{spool};
        $sp && $sp->{unwritten} == 0;
    }), 'their records written';

    $t->kill_all;
    $t->allow_log(qr/exited on signal 9/);
    $t->nginx_conf(conf(without_old => 1));     # history=1m again
    $t->start;

    my %tx;
    ok eventually(sub {
        %tx = map { decode_json($_->{request}{body})->{fields}{tx}
                    => $_->{state} }
              map { decode_json($t->get("/status/deliveries/$_->{id}")->{body}) }
              grep { $_->{callback} eq 'members' } @{ status()->{deliveries} };
        20 == grep { /^K/ } keys %tx;
    }), 'all twenty in the history after SIGKILL';
    is scalar(grep { $tx{"K$_"} ne 'delivered' } 1 .. 20), 0,
        '... delivered';
    sleep 1;
    is scalar @{ $t->received('members') }, $before + 20, 'none sent again';
};

subtest 'an edit that enabled a callback is written for the next start' => sub {
    is $t->post('/status/callbacks/members/disable', '')->{status}, 200,
        'members disabled (url /v2)';
    $members_path = '/v3';
    $t->nginx_conf(conf(without_old => 1));
    $t->reload;
    ok eventually(sub { callback('members')->{state} eq 'enabled' }),
        'enabled by the edit of its url';
    $members_path = '/v2';
    $t->nginx_conf(conf(without_old => 1));
    $t->reload;
    $t->stop;
    $t->start;
    sleep 0.5;
    is callback('members')->{state}, 'enabled',
        'back to the url it was disabled with, after a restart: enabled';
};

$t->stop;
done_testing;
