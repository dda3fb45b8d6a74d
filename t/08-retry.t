# Retries and the zone as the source of truth for pending work: attempts=
# and retry=, Retry-After, 410 Gone, disable_after= (a count or a time) and
# disable_on_error= with paused events kept across a reload and going out
# when the callback is enabled or its url= edited, manual retries outside
# the schedule, fixing a url and retrying every failed delivery, a worker
# killed mid-transfer (its claim expires and
# another worker sends it, same webhook-id), a graceful reload mid-transfer
# (the old worker finishes it, unless worker_shutdown_timeout cuts it short:
# then the attempt is recorded and the new workers send it again), and a
# backlog of 1000 deliveries to a
# receiver that is down across a reload, all arriving once it is up; a
# reload that removes a callback fails its pending deliveries.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use PBTest qw(eventually);

my $t = PBTest->new;

my %flaky_plan = (1 => [500], 2 => [503, 'Retry-After' => '2'], 3 => [200]);
$t->receiver(flaky => respond => sub {
    my ($req, $n) = @_;
    my ($status, @headers) = @{ $flaky_plan{$n} // [200] };
    return { status => $status, headers => \@headers, body => "answer $n" };
});
$t->receiver(broken => status => 500);
$t->receiver(gone => respond => sub {
    my ($req, $n) = @_;
    return { status => $n == 1 ? 410 : 200, body => 'gone' };
});
my $crm_fails = 1;
$t->receiver(crm => respond => sub {
    my ($req, $n) = @_;
    return { status => $n <= 2 ? 500 : 200, body => "crm $n" };
});
$t->receiver(slow => respond => sub {
    my ($req, $n) = @_;
    return { status => 200, delay => $n == 1 ? 4 : 0, body => 'slow' };
});
$t->receiver(reload => respond => sub {
    my ($req, $n) = @_;
    return { status => 200, delay => $n == 1 ? 3 : 0, body => 'reload' };
});
$t->receiver('backlog');
$t->stop_server('backlog');    # down until the backlog has piled up
$t->receiver(manual => status => 500);
$t->receiver(fixme => respond => sub {
    my ($req) = @_;
    return { status => $req->{path} eq '/right' ? 200 : 404, body => 'fix' };
});
$t->receiver(typo => status => 404);
$t->receiver(down => status => 503);

my $conf = "worker_shutdown_timeout 1s;\n" . $t->module_conf(<<"EOF");
    postback_zone pb:8m;
    postback_field status \$.status;
    postback_field tx \$.tx;
    postback_event \$postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        postback on;

        location /flaky/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback flaky url=http://127.0.0.1:%%PORT_flaky%%/
                retry=1s;
        }
        location /broken/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback broken url=http://127.0.0.1:%%PORT_broken%%/
                attempts=2 retry=1s;
        }
        location /gone/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback gone url=http://127.0.0.1:%%PORT_gone%%/;
        }
        location /crm/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback crm url=http://127.0.0.1:%%PORT_crm%%/
                attempts=1 disable_after=2;
        }
        location /slow/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback slow url=http://127.0.0.1:%%PORT_slow%%/
                timeout=2s retry=1s;
        }
        location /reload/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback reload url=http://127.0.0.1:%%PORT_reload%%/
                retry=1s;
        }
        location /removed/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback removed url=http://127.0.0.1:%%PORT_nobody%%/
                attempts=100 retry=1s;
        }
        location /manual/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback manual url=http://127.0.0.1:%%PORT_manual%%/
                attempts=3 retry=1h;
        }
        location /fixme/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback fixme url=http://127.0.0.1:%%PORT_fixme%%/wrong
                method=get param=tx=\$postback_tx attempts=1;
        }
        location /typo/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback typo url=http://127.0.0.1:%%PORT_typo%%/
                retry=1s attempts=20 disable_on_error=2s;
            postback_callback nxdomain url=http://no-such-host.invalid/
                retry=1s attempts=20 disable_on_error=2s;
        }
        location /down/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback down url=http://127.0.0.1:%%PORT_down%%/
                retry=1s attempts=20 disable_after=2s;
        }
        location /backlog/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback_callback backlog url=http://127.0.0.1:%%PORT_backlog%%/
                attempts=100 retry=1s;
        }

        # the checkout service: a document made of the query
        location /doc/ {
            postback off;
            default_type application/json;
            return 200 '{"status":"\$arg_status","tx":"\$arg_tx"}';
        }
        location /status/ {
            postback off;
            postback_status;
        }
    }
EOF
$t->nginx_conf($conf);
$t->start;

sub status {
    return decode_json($t->get('/status/?limit=1000')->{body});
}

sub delivery_of {
    my ($cb) = @_;
    my ($d) = grep { $_->{callback} eq $cb } @{ status()->{deliveries} };
    return $d;
}

sub callback {
    my ($name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ status()->{callbacks} };
    return $cb;
}

subtest 'retries until a 2xx, Retry-After honoured, same webhook-id' => sub {
    my $start = time;
    $t->get('/flaky/x?status=APPROVED&tx=F1');
    my $got = $t->wait_received(flaky => 3, 15);
    is scalar @$got, 3, 'three attempts reached the receiver';
    my %ids = map { $_->{headers}{'webhook-id'} => 1 } @$got;
    is scalar keys %ids, 1, 'all with the same webhook-id';

    # retry=1s: 0.8 to 1.2 s; then Retry-After: 2 is longer than that
    my $gap1 = $got->[1]{time} - $got->[0]{time};
    my $gap2 = $got->[2]{time} - $got->[1]{time};
    ok $gap1 >= 0.75 && $gap1 < 1.9, sprintf 'retry after about 1 s (%.2f)', $gap1;
    ok $gap2 >= 1.95, sprintf 'Retry-After: 2 honoured (%.2f)', $gap2;

    ok eventually(sub { (delivery_of('flaky') // {})->{state} eq 'delivered' }),
        'delivered';
    my $d = delivery_of('flaky');
    is_deeply [ map { $_->{status} } @{ $d->{attempts} } ], [500, 503, 200],
        'every attempt recorded';
    my $cb = callback('flaky');
    is_deeply [ @$cb{qw(delivered failed pending attempts consecutive_failures)} ],
        [1, 0, 0, 3, 0], 'counters';
};

subtest 'attempts=2: failed after the second' => sub {
    $t->get('/broken/x?status=APPROVED&tx=B1');
    ok eventually(sub { (delivery_of('broken') // {})->{state} eq 'failed' }),
        'failed';
    is scalar @{ $t->received('broken') }, 2, 'two attempts, no more';
    is_deeply [ map { $_->{status} } @{ delivery_of('broken')->{attempts} } ],
        [500, 500], 'both recorded';
    my $cb = callback('broken');
    is_deeply [ @$cb{qw(delivered failed pending attempts)} ], [0, 1, 0, 2],
        'counters';
};

subtest '410 Gone disables the callback; it stays so across a reload' => sub {
    $t->get('/gone/x?status=APPROVED&tx=G1');
    ok eventually(sub { (callback('gone') // {})->{state} eq 'disabled' }),
        'disabled by 410';
    is delivery_of('gone')->{state}, 'failed', 'that delivery failed';

    $t->get('/gone/x?status=APPROVED&tx=G2');
    ok eventually(sub { callback('gone')->{paused} == 1 }),
        'a new event is paused, not dropped';
    is delivery_of('gone')->{state}, 'paused', '... and shows so';
    sleep 0.3;
    is scalar @{ $t->received('gone') }, 1, 'nothing sent while disabled';

    $t->reload;
    sleep 0.5;
    is callback('gone')->{state}, 'disabled', 'still disabled after a reload';
    is scalar @{ $t->received('gone') }, 1, '... and nothing sent';

    # the operator sends the paused ones before switching it on again
    my $r = $t->post('/status/callbacks/gone/retry?state=paused', '');
    is $r->{status}, 202, 'retry of the paused ones: 202';
    is decode_json($r->{body})->{retried}, 1, '... one of them';
    my $got = $t->wait_received(gone => 2);
    is scalar @$got, 2, 'it went out while the callback is disabled';
    is decode_json($got->[1]{body})->{fields}{tx}, 'G2', '... the right one';
    ok eventually(sub { delivery_of('gone')->{state} eq 'delivered' }),
        '... delivered';
    is callback('gone')->{state}, 'disabled', 'the callback stays disabled';

    is $t->post('/status/callbacks/gone/enable', '')->{status}, 200,
        'enabled through the API';
    ok eventually(sub { callback('gone')->{state} eq 'enabled'
                        && callback('gone')->{paused} == 0 }), 'enabled';
};

subtest 'disable_after=2' => sub {
    $t->get('/crm/x?status=APPROVED&tx=C1');
    $t->wait_received(crm => 1);
    $t->get('/crm/x?status=APPROVED&tx=C2');
    ok eventually(sub { (callback('crm') // {})->{state} eq 'disabled' }),
        'disabled after two failed deliveries in a row';
    $t->get('/crm/x?status=APPROVED&tx=C3');
    ok eventually(sub { callback('crm')->{paused} == 1 }), 'C3 paused';
    like $t->error_log,
        qr/callback "crm" disabled: 2 deliveries failed in a row/,
        'said in the error log';
    is callback('crm')->{disabled_reason}, 'failures', '... and the status';

    # an edited url= is another receiver: enabled again
    $conf =~ s{(postback_callback crm url=http://127.0.0.1:%%PORT_crm%%/)}
              {${1}v2};
    $t->nginx_conf($conf);
    $t->reload;
    my $got = $t->wait_received(crm => 3);
    is decode_json($got->[2]{body})->{fields}{tx}, 'C3',
        'the paused one went out after the url was edited';
    is $got->[2]{path}, '/v2', '... to the new url';
    ok eventually(sub { callback('crm')->{delivered} == 1 }), 'delivered';
    like $t->error_log, qr/callback "crm" enabled again: its url changed/,
        'said in the error log';
};

subtest 'a manual retry is one attempt outside the schedule' => sub {
    $t->get('/manual/x?status=APPROVED&tx=M1');
    my $d;
    ok eventually(sub {
        $d = delivery_of('manual');
        $d && $d->{state} eq 'pending' && @{ $d->{attempts} } == 1;
    }), 'first attempt failed, the next in an hour';
    my $next = $d->{next_attempt_at};

    for my $click (1 .. 3) {
        my $r = $t->post("/status/deliveries/$d->{id}/retry", '');
        is $r->{status}, 202, "retry $click: 202";
        ok eventually(sub {
            my $now = delivery_of('manual');
            $now->{state} eq 'pending'
                && @{ $now->{attempts} } == 1 + $click;
        }), "... sent, and pending again";
    }

    $d = delivery_of('manual');
    is $d->{next_attempt_at}, $next, 'the schedule did not move';
    is_deeply [ map { $_->{manual} ? 1 : 0 } @{ $d->{attempts} } ],
        [0, 1, 1, 1], 'the three manual attempts are marked';
    is scalar @{ $t->received('manual') }, 4, 'four requests, no more';
};

subtest 'fix the url, reload, retry every failed delivery' => sub {
    $t->get("/fixme/x?status=APPROVED&tx=F$_") for 1 .. 2;
    ok eventually(sub {
        2 == grep { $_->{callback} eq 'fixme' && $_->{state} eq 'failed' }
             @{ status()->{deliveries} };
    }), 'both failed against the wrong url';

    $conf =~ s{(url=http://127.0.0.1:%%PORT_fixme%%/)wrong}{${1}right};
    $t->nginx_conf($conf);
    $t->reload;

    my $r = $t->post('/status/callbacks/fixme/retry', '');
    is $r->{status}, 202, 'retry of the failed ones: 202';
    is decode_json($r->{body})->{retried}, 2, '... both';
    my $got = $t->wait_received(fixme => 4);
    is_deeply [ sort map { "$_->{path}?$_->{query}" } @$got[2, 3] ],
        [ '/right?tx=F1', '/right?tx=F2' ],
        'both went to the fixed url, with their parameters';
    ok eventually(sub {
        2 == grep { $_->{callback} eq 'fixme' && $_->{state} eq 'delivered' }
             @{ status()->{deliveries} };
    }), 'both delivered';

    is $t->post('/status/callbacks/fixme/retry?state=sent', '')->{status},
        400, 'an unknown state: 400';
    is $t->post('/status/callbacks/nobody/retry', '')->{status}, 404,
        'an unknown callback: 404';
};

subtest 'disable_on_error=: a url that only answers 404, a name unknown' => sub {
    $t->get('/typo/x?status=APPROVED&tx=T1');
    for my $name (qw(typo nxdomain)) {
        ok eventually(sub { callback($name)->{state} eq 'disabled' }, 20),
            "$name disabled";
        is callback($name)->{disabled_reason}, 'wrong_url', '... wrong url';
        is callback($name)->{disables}, 1, '... counted';
        like $t->error_log,
            qr/callback "$name" disabled: for 2000 ms \(disable_on_error=\)/,
            '... and logged';
    }
    my $tries = scalar @{ $t->received('typo') };
    ok $tries >= 3 && $tries <= 4, "after 2 s of 404s ($tries attempts)";

    # T1 pauses when next due, T2 at once
    $t->get('/typo/x?status=APPROVED&tx=T2');
    ok eventually(sub { callback('typo')->{paused} == 2 }),
        'a new event is kept paused, and the one retrying too';
};

subtest 'disable_after=2s: a receiver failing every attempt for 2 s' => sub {
    $t->get('/down/x?status=APPROVED&tx=W1');
    ok eventually(sub { callback('down')->{state} eq 'disabled' }, 10),
        'disabled';
    is callback('down')->{disabled_reason}, 'failures', '... for failures';
    like $t->error_log,
        qr/callback "down" disabled: every attempt failed for 2000 ms/,
        '... and logged';
    ok eventually(sub { delivery_of('down')->{state} eq 'paused' }),
        'its delivery is kept paused when next due';
};

subtest 'a worker killed mid-transfer: another sends it' => sub {
    $t->get('/slow/x?status=APPROVED&tx=K1');
    my $first = $t->wait_received(slow => 1);
    my $d = delivery_of('slow');
    is $d->{state}, 'sending', 'being sent';

    # the worker that sends it is the one with the connection to "slow"
    my ($victim) = grep { kill 0, $_ } $t->worker_pids;
    kill 'KILL', $t->worker_pids;    # both: the one sending is among them
    $t->allow_log(qr/exited on signal 9/);

    my $got = $t->wait_received(slow => 2, 15);
    is scalar @$got, 2, 'sent again once the claim expired';
    is $got->[1]{headers}{'webhook-id'}, $got->[0]{headers}{'webhook-id'},
        'same webhook-id';
    ok eventually(sub { delivery_of('slow')->{state} eq 'delivered' }),
        'delivered';
};

subtest 'a reload mid-transfer cut short by worker_shutdown_timeout' => sub {
    $t->get('/reload/x?status=APPROVED&tx=R1');
    $t->wait_received(reload => 1);
    $t->reload;
    my $got = $t->wait_received(reload => 2, 10);
    is scalar @$got, 2, 'the new workers sent it again';
    is $got->[1]{headers}{'webhook-id'}, $got->[0]{headers}{'webhook-id'},
        'same webhook-id';
    my $d;
    ok eventually(sub {
        $d = delivery_of('reload');
        $d->{state} eq 'delivered' && @{ $d->{attempts} } == 2;
    }), 'delivered at the second attempt';
    like $d->{attempts}[0]{error}, qr/shutting down/,
        'the first, cut short, recorded as an attempt';
};

subtest 'a backlog of 1000 across a reload, then the receiver comes up' => sub {
    my $n = 1000;
    for my $i (1 .. $n) {
        $t->get("/backlog/x?status=APPROVED&tx=L$i");
    }
    ok eventually(sub { callback('backlog')->{pending} == $n }),
        "$n pending";

    $t->reload;
    is callback('backlog')->{pending}, $n, 'still pending after the reload';

    $t->receiver('backlog');
    ok eventually(sub { callback('backlog')->{delivered} == $n }),
        'all delivered once the receiver is up';

    my %tx;
    $tx{ decode_json($_->{body})->{fields}{tx} }++
        for @{ $t->received('backlog') };
    is scalar keys %tx, $n, 'every one arrived';
    my $twice = grep { $_ > 1 } values %tx;
    is $twice, 0, 'none twice';
};

subtest 'a reload that removes a callback fails its pending deliveries' => sub {
    $t->get("/removed/x?status=APPROVED&tx=D$_") for 1 .. 2;
    ok eventually(sub { callback('removed')->{pending} == 2 }), '2 pending';

    # its location goes too: "postback on" with no callback is refused
    (my $without = $conf) =~ s{\n\s*location /removed/ \{.*?\n        \}}{}s;
    $t->nginx_conf($without);
    $t->reload;

    ok eventually(sub {
        2 == grep { $_->{callback} eq 'removed' && $_->{state} eq 'failed' }
             @{ status()->{deliveries} };
    }), 'both failed: nothing could send them';
    is callback('removed')->{state}, 'removed',
        'the callback is listed as removed while its history lasts';
};

$t->stop;
done_testing;
