# Timeout events: postback_timeout_event, what no response shows.
#
# 1. nginx -t refuses a timeout event without postback_key, one without
#    after= and one without from= (their messages), a bare name and an
#    after= that is not a time; the full config passes.
# 2. It fires: STARTED for a key and nothing else gives, about 2 s later
#    (nothing at 1.3 s), one ABANDONED with the fields and the document of
#    the STARTED, its webhook-id derived (msg_ + 24 hex of callback, key,
#    event), its created_at the due time.  While it waits the status lists
#    it with ?state=scheduled (created_at the due time, no
#    next_attempt_at) and the callback's "scheduled" gauge counts it (JSON
#    and Prometheus); once fired it is delivered, the gauge back to 0,
#    capture.timeout_events +1 (and postback_timeout_events_total).
#    from= is a list, without regard to case: a "pending" arms EXPIRED
#    (after=3s).  A callback that does not take the name gets nothing.
# 3. A change in time cancels it: STARTED, APPROVED 0.5 s later: APPROVED
#    only, the ABANDONED "cancelled" (?state=cancelled),
#    timeout_events_cancelled +1, its retry 409, nothing more sent; an
#    event no callback takes is a change too.  STARTED then STARTED again
#    (a duplicate) is no change: it fires once.
# 4. Across a reload the scheduled deliveries stay in the zone and fire
#    once; a change after the reload still cancels.
# 5. Four workers: 20 keys STARTED at once give exactly 20 ABANDONED, one
#    per key, each webhook-id derived; retry of a scheduled one: 409.
# 6. Once fired, ABANDONED is the key's last event: its capture is a
#    duplicate; STARTED again arms it again, and it fires again.
# 7. Every callback of the location taking the name gets it: events=
#    naming it, and events=* with an if= (a volatile map of
#    $postback_event) evaluated for the name, not for the event captured
#    (a callback whose if= is true for STARTED only gets nothing).
# Every nginx stops with a clean error log.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

use PBTest qw(url eventually derived_id);
use PBLedger ();

my $JSON = JSON::PP->new->utf8->canonical;
my $ID_RE = qr/^msg_[0-9a-f]{24}$/;

# ---------------------------------------------------------------- helpers

# "2026-12-03T01:45:00.123Z" as epoch seconds (with the milliseconds).
sub iso_epoch {
    my ($s) = @_;
    my ($y, $mo, $d, $h, $mi, $sec, $ms) =
        ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{3}))?Z$/
        or return undef;
    return timegm($sec, $mi, $h, $d, $mo - 1, $y) + ($ms // 0) / 1000;
}

# The nginx.conf of a checkout with timeout events: /buy/?status=S&tx=T
# answers {"status":S,"tx":T} through postback on; ABANDONED after 2 s
# from STARTED, EXPIRED after 3 s from BILLET_PRINTED or PENDING.
# Callbacks: hook (ABANDONED, EXPIRED, APPROVED) and other (APPROVED
# only); with gated => 1 also gated (events=* if= the event is
# ABANDONED) and never (events=ABANDONED if= the event is STARTED).
# no_key => 1: without postback_key; timeouts => the timeout lines.
sub timeout_conf {
    my ($t, %o) = @_;
    my $gated = !$o{gated} ? '' : <<'EOF';
            postback_callback gated url=http://127.0.0.1:%%PORT_gated%%/gated
                events=* if=$pb_abandoned;
            postback_callback never url=http://127.0.0.1:%%PORT_never%%/never
                events=ABANDONED if=$pb_started;
EOF
    my $key = $o{no_key} ? '' : 'postback_key $postback_tx;';
    my $timeouts = $o{timeouts} // <<'EOF';
    postback_timeout_event ABANDONED after=2s from=STARTED;
    postback_timeout_event EXPIRED after=3s from=BILLET_PRINTED,PENDING;
EOF
    return $t->module_conf(<<"EOF", workers => $o{workers} // 2);
    postback_zone pb:4m;
    postback_field status \$.status;
    postback_field tx     \$.tx;
    postback_event \$postback_status;
    $key
$timeouts
    map \$postback_event \$pb_abandoned {
        volatile;
        ABANDONED 1;
        default   0;
    }
    map \$postback_event \$pb_started {
        volatile;
        STARTED 1;
        default 0;
    }

    server {
        listen 127.0.0.1:%%PORT_front%%;

        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
            postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/hook
                events=ABANDONED,EXPIRED,APPROVED;
$gated            postback_callback other url=http://127.0.0.1:%%PORT_other%%/other
                events=APPROVED;
        }
        location /doc/ {
            default_type application/json;
            return 200 '{"status":"\$arg_status","tx":"\$arg_tx"}';
        }
        location /status/ {
            postback_status;
        }
    }
EOF
}

sub status_json {
    my ($t, %q) = @_;
    my $r = $t->get(url('/status/', limit => 1000, %q));
    die "status: " . ($r->{status} // $r->{error}) . "\n" unless ($r->{status} // 0) == 200;
    return $JSON->decode($r->{body});
}

# capture.timeout_events and capture.timeout_events_cancelled.
sub timeout_counters {
    my ($t) = @_;
    my $c = status_json($t, limit => 0)->{capture};
    return ($c->{timeout_events}, $c->{timeout_events_cancelled});
}

# The "scheduled" gauge of callback $name.
sub scheduled_gauge {
    my ($t, $name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ status_json($t, limit => 0)->{callbacks} };
    return $cb && $cb->{scheduled};
}

# The deliveries of the status (filtered by %q) of key $key and event $event.
sub deliveries_of {
    my ($t, $key, $event, %q) = @_;
    return grep { ($_->{key} // '') eq $key && $_->{event} eq $event }
           @{ status_json($t, %q)->{deliveries} };
}

# The value of a Prometheus series line ("name{labels}").
sub metric {
    my ($t, $series) = @_;
    my $text = $t->get('/status/?format=prometheus')->{body} // '';
    my ($v) = $text =~ /^\Q$series\E (\S+)$/m;
    return $v;
}

# One checkout answering status $status for transaction $tx: the response.
sub buy {
    my ($t, $status, $tx) = @_;
    my $r = $t->get(url('/buy/x', status => $status, tx => $tx));
    die "buy $status $tx: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    return $r;
}

# The records of receiver $name for transaction $tx (and event $event, if
# given), each as [ record, decoded body ].
sub got {
    my ($t, $name, $tx, $event) = @_;
    my @found;
    for my $rec (@{ $t->received($name) }) {
        my $body = eval { $JSON->decode($rec->{body}) } or next;
        next unless ($body->{fields}{tx} // '') eq $tx;
        next if defined $event && ($body->{event} // '') ne $event;
        push @found, [ $rec, $body ];
    }
    return @found;
}

# Waits (up to $timeout s, 8) for $n records of got(...).
sub wait_got {
    my ($t, $name, $tx, $event, $n, $timeout) = @_;
    my @found;
    eventually(sub { @found = got($t, $name, $tx, $event); @found >= $n }, $timeout // 8);
    return @found;
}

# Gives receivers @names $timeout seconds (1) for one request more than
# they have (a request that should not come): returns as soon as one does.
sub settle {
    my ($t, $timeout, @names) = @_;
    my %n = map { $_ => scalar @{ $t->received($_) } } @names;
    eventually(sub { grep { @{ $t->received($_) } > $n{$_} } @names }, $timeout // 1);
}

sub events_of {
    my ($t, $name) = @_;
    return [ map { my $b = eval { $JSON->decode($_->{body}) };
                   $b ? "$b->{event} $b->{fields}{tx}" : 'undecodable' }
             @{ $t->received($name) } ];
}


# ================================================================ instance

my $t = PBTest->new;
$t->receiver($_) for qw(hook other);
$t->nginx_conf(timeout_conf($t));
$t->start;

# ================================================================ tests

subtest '1. nginx -t: postback_key, after= and from= are needed' => sub {
    my $c = PBTest->new;
    $c->allow_log(qr/\[emerg\].*(?:postback_timeout_event|after=)/);

    $c->nginx_conf(timeout_conf($c));
    my ($rc, $out) = $c->test_conf;
    is $rc, 0, 'the full config passes' or diag $out;

    $c->nginx_conf(timeout_conf($c, no_key => 1));
    ($rc, $out) = $c->test_conf;
    isnt $rc, 0, 'without postback_key: refused';
    like $out, qr/"postback_timeout_event" requires "postback_key"/, '... with its message';

    for my $case ([ 'without after=', 'postback_timeout_event ABANDONED from=STARTED;',
                    qr/"postback_timeout_event" directive needs after= and from=/ ],
                  [ 'without from=', 'postback_timeout_event ABANDONED after=2s;',
                    qr/"postback_timeout_event" directive needs after= and from=/ ],
                  [ 'a bare name', 'postback_timeout_event ABANDONED;',
                    qr/"postback_timeout_event"/ ],
                  [ 'after= not a time', 'postback_timeout_event ABANDONED after=xyz from=STARTED;',
                    qr/invalid "after=xyz"/ ]) {
        my ($name, $line, $re) = @$case;
        $c->nginx_conf(timeout_conf($c, timeouts => "    $line\n"));
        ($rc, $out) = $c->test_conf;
        isnt $rc, 0, "$name: refused";
        like $out, $re, '... with its message';
        note "$name: $1" if $out =~ /^nginx: \[emerg\] (.*)$/m;
    }
};

subtest '2. it fires: STARTED and nothing else' => sub {
    my ($fired0, $cancelled0) = timeout_counters($t);
    my $t0 = time;
    buy($t, 'STARTED', 'A');

    # the capture's work comes after the client's last bytes: poll
    my @s;
    eventually(sub {
        @s = deliveries_of($t, 'A', 'ABANDONED', state => 'scheduled');
    }, 5);
    is scalar @s, 1, 'status: one ABANDONED for A listed with ?state=scheduled';
    my $s = $s[0] // {};
    is $s->{state}, 'scheduled', '... state scheduled';
    is $s->{callback}, 'hook', '... callback hook';
    is $s->{key}, 'A', '... key A';
    is $s->{webhook_id}, derived_id('hook', 'A', 'ABANDONED'), '... webhook_id derived';
    is $s->{next_attempt_at}, undef, '... no next_attempt_at';
    my $due = iso_epoch($s->{created_at});
    ok defined $due && abs($due - ($t0 + 2)) < 1,
        '... created_at is the due time, capture + 2 s'
        or diag "created_at " . ($s->{created_at} // 'none') . ", capture at " . sprintf('%.3f', $t0);
    is scalar(deliveries_of($t, 'A', 'STARTED')), 0, 'no delivery of STARTED itself';
    is scheduled_gauge($t, 'hook'), 1, 'hook: scheduled gauge 1';
    is scheduled_gauge($t, 'other'), 0, 'other (APPROVED only): scheduled gauge 0';
    is metric($t, 'postback_scheduled{callback="hook"}'), 1, 'Prometheus: postback_scheduled 1';

    # from= is a list, matched without regard to case
    my $tp = time;
    buy($t, 'pending', 'PX');
    # the capture's work comes after the client's last bytes: poll
    ok eventually(sub { scheduled_gauge($t, 'hook') == 2 }, 5),
        'a "pending" arms EXPIRED: hook gauge 2';

    sleep 1.3 - (time - $t0) if time - $t0 < 1.3;
    is scalar(got($t, 'hook', 'A')), 0, 'nothing at the receiver 1.3 s after the capture';

    my @a = wait_got($t, 'hook', 'A', 'ABANDONED', 1, 6);
    is scalar @a, 1, 'hook: ABANDONED for A arrived';
    my ($rec, $body) = @{ $a[0] // [ {}, {} ] };
    my $after = ($rec->{time} // 0) - $t0;
    ok $after >= 1.5 && $after < 4.5, 'about 2 s after the capture'
        or diag sprintf 'arrived %.3f s after the capture', $after;
    note sprintf 'ABANDONED for A arrived %.3f s after the capture', $after;
    is $body->{event}, 'ABANDONED', 'event ABANDONED';
    is $body->{callback}, 'hook', 'callback hook';
    is_deeply $body->{fields}, { status => 'STARTED', tx => 'A' }, "the STARTED's fields";
    is_deeply $body->{data}, { status => 'STARTED', tx => 'A' }, "the STARTED's document";
    like $rec->{headers}{'webhook-id'}, $ID_RE, 'webhook-id: msg_ + 24 hex';
    is $rec->{headers}{'webhook-id'}, derived_id('hook', 'A', 'ABANDONED'), '... derived';
    is $body->{id}, $rec->{headers}{'webhook-id'}, 'body id is the webhook-id';
    my $created = iso_epoch($body->{created_at});
    ok defined $created && abs($created - ($t0 + 2)) < 1, 'created_at about capture + 2 s'
        or diag "created_at " . ($body->{created_at} // 'none');
    is $body->{created_at}, $s->{created_at}, "... the scheduled one's";

    my $d;
    ok eventually(sub {
        ($d) = deliveries_of($t, 'A', 'ABANDONED');
        $d && $d->{state} eq 'delivered';
    }, 5), 'status: delivered' or diag 'state: ' . ($d ? $d->{state} : 'none');
    is $d && $d->{id}, $s->{id}, "... the scheduled one's id";

    # EXPIRED for PX: after 3 s
    my @x = wait_got($t, 'hook', 'PX', 'EXPIRED', 1, 6);
    is scalar @x, 1, 'hook: EXPIRED for PX arrived';
    my $px_after = @x ? $x[0][0]{time} - $tp : 0;
    ok $px_after >= 2.5 && $px_after < 5.5, '... about 3 s after the "pending"'
        or diag sprintf 'arrived %.3f s after', $px_after;
    is $x[0] && $x[0][1]{fields}{status}, 'pending', '... with its fields';

    ok eventually(sub { scheduled_gauge($t, 'hook') == 0 }, 3), 'scheduled gauge back to 0';
    ok eventually(sub { (timeout_counters($t))[0] == $fired0 + 2 }, 3),
        'timeout_events +2 (ABANDONED for A, EXPIRED for PX)'
        or diag 'timeout_events ' . ((timeout_counters($t))[0] - $fired0) . ' more';
    is((timeout_counters($t))[1], $cancelled0, 'timeout_events_cancelled unchanged');
    is metric($t, 'postback_timeout_events_total'), $fired0 + 2,
        'Prometheus: postback_timeout_events_total';
    is metric($t, 'postback_timeout_events_cancelled_total'), $cancelled0,
        'Prometheus: postback_timeout_events_cancelled_total';
    is metric($t, 'postback_scheduled{callback="hook"}'), 0, 'Prometheus: postback_scheduled 0';

    settle($t, 0.5, qw(hook other));
    is scalar(got($t, 'hook', 'A')), 1, 'hook: one delivery for A in all';
    is_deeply events_of($t, 'other'), [], 'other: nothing';
};

subtest '3. a change in time cancels it; a duplicate does not' => sub {
    my ($fired0, $cancelled0) = timeout_counters($t);
    my %n0 = map { $_ => scalar @{ $t->received($_) } } qw(hook other);

    my $t0 = time;
    buy($t, 'STARTED', $_) for qw(B B2 B3);
    sleep 0.5;
    # counted: its capture (after the client's last bytes) is over
    $t->counted('/status/', sub { buy($t, 'APPROVED', 'B') });
    my ($r, $delta) = $t->counted('/status/', sub { buy($t, 'STARTED', 'B2') });
    is_deeply $delta, { examined => 1, duplicate => 1 }, 'STARTED again for B2: a duplicate';
    buy($t, 'WAITING', 'B3');    # no callback takes it
    cmp_ok time - $t0, '<', 1.5, 'the changes came in time';
    is scalar(deliveries_of($t, 'B2', 'ABANDONED', state => 'scheduled')), 1,
        'B2: one ABANDONED scheduled';

    is scalar(wait_got($t, 'hook', 'B', 'APPROVED', 1, 3)), 1, 'hook: APPROVED for B';
    is scalar(wait_got($t, 'other', 'B', 'APPROVED', 1, 3)), 1, 'other: APPROVED for B';

    my @b2 = wait_got($t, 'hook', 'B2', 'ABANDONED', 1, 6);
    is scalar @b2, 1, 'B2 (STARTED twice): ABANDONED fired';
    my $b2_after = @b2 ? $b2[0][0]{time} - $t0 : 0;
    ok $b2_after >= 1.5 && $b2_after < 4.5, '... about 2 s after the first STARTED'
        or diag sprintf 'arrived %.3f s after', $b2_after;

    my @cancelled;
    ok eventually(sub {
        @cancelled = grep { $_->{event} eq 'ABANDONED' && ($_->{key} // '') =~ /^B3?$/ }
                     @{ status_json($t, state => 'cancelled')->{deliveries} };
        @cancelled >= 2;
    }, 5), 'B (APPROVED), B3 (WAITING): their ABANDONED listed with ?state=cancelled'
        or diag $JSON->encode([ map { "$_->{callback} $_->{key} $_->{state}" } @cancelled ]);
    my ($bc) = grep { $_->{key} eq 'B' } @cancelled;
    is $bc && $bc->{state}, 'cancelled', '... state cancelled';
    is $bc && $bc->{next_attempt_at}, undef, '... no next_attempt_at';
    is $bc && $bc->{webhook_id}, derived_id('hook', 'B', 'ABANDONED'), '... webhook_id derived';
    is scalar(deliveries_of($t, 'B', 'ABANDONED', state => 'scheduled')), 0, '... none left scheduled';

    ok eventually(sub { (timeout_counters($t))[1] == $cancelled0 + 2 }, 3),
        'timeout_events_cancelled +2 (B, B3)'
        or diag 'cancelled ' . ((timeout_counters($t))[1] - $cancelled0) . ' more';
    ok eventually(sub { (timeout_counters($t))[0] == $fired0 + 1 }, 3),
        'timeout_events +1 (B2)'
        or diag 'fired ' . ((timeout_counters($t))[0] - $fired0) . ' more';
    is metric($t, 'postback_timeout_events_cancelled_total'), $cancelled0 + 2,
        'Prometheus: postback_timeout_events_cancelled_total';

    if ($bc) {
        my $retry = $t->post("/status/deliveries/$bc->{id}/retry", '');
        is $retry->{status}, 409, 'retry of a cancelled one: 409';
        my ($still) = deliveries_of($t, 'B', 'ABANDONED');
        is $still && $still->{state}, 'cancelled', '... it stays cancelled';
    }

    settle($t, 1, qw(hook other));
    is_deeply [ @{ events_of($t, 'hook') }[ $n0{hook} .. $#{ $t->received('hook') } ] ],
        [ 'APPROVED B', 'ABANDONED B2' ], 'hook: APPROVED for B, ABANDONED for B2, nothing more';
    is_deeply [ @{ events_of($t, 'other') }[ $n0{other} .. $#{ $t->received('other') } ] ],
        [ 'APPROVED B' ], 'other: APPROVED for B only';
};

subtest '4. across a reload' => sub {
    my ($fired0, $cancelled0) = timeout_counters($t);
    my $t0 = time;
    buy($t, 'STARTED', $_) for qw(C D);
    my @workers = $t->worker_pids;
    $t->reload;
    note sprintf 'reloaded %.3f s after the captures', time - $t0;
    my %old = map { $_ => 1 } @workers;
    ok !grep({ $old{$_} } $t->worker_pids), 'new workers';
    is scalar(deliveries_of($t, 'C', 'ABANDONED', state => 'scheduled')), 1,
        'C: still scheduled after the reload';
    is scheduled_gauge($t, 'hook'), 2, 'hook: scheduled gauge 2 after the reload';
    buy($t, 'APPROVED', 'D');
    my $changed = time - $t0;
    cmp_ok $changed, '<', 1.6, 'APPROVED for D came in time, after the reload'
        or diag sprintf '%.3f s after the capture', $changed;

    my @c = wait_got($t, 'hook', 'C', 'ABANDONED', 1, 6);
    is scalar @c, 1, 'hook: ABANDONED for C arrived';
    my $after = @c ? $c[0][0]{time} - $t0 : 0;
    ok $after >= 1.5 && $after < 4.5, '... about 2 s after the capture'
        or diag sprintf 'arrived %.3f s after', $after;
    is $c[0] && $c[0][0]{headers}{'webhook-id'}, derived_id('hook', 'C', 'ABANDONED'),
        '... its derived webhook-id';
    is $c[0] && $c[0][1]{fields}{status}, 'STARTED', '... the fields of the STARTED';

    my $dc;
    ok eventually(sub {
        ($dc) = deliveries_of($t, 'D', 'ABANDONED');
        $dc && $dc->{state} eq 'cancelled';
    }, 5), 'D: ABANDONED cancelled' or diag 'state: ' . ($dc ? $dc->{state} : 'none');
    ok eventually(sub { (timeout_counters($t))[1] == $cancelled0 + 1 }, 3),
        'timeout_events_cancelled +1 (D)';
    ok eventually(sub { (timeout_counters($t))[0] == $fired0 + 1 }, 3),
        'timeout_events +1 (C)';

    settle($t, 1, 'hook');
    is scalar(got($t, 'hook', 'C')), 1, 'hook: C once';
    is_deeply [ map { $_->[1]{event} } got($t, 'hook', 'D') ], ['APPROVED'], 'hook: D APPROVED only';
};

subtest '5. four workers: 20 keys at once, each fires once' => sub {
    my $w = PBTest->new;
    $w->receiver($_) for qw(hook other);
    $w->nginx_conf(timeout_conf($w, workers => 4));
    $w->start;
    is scalar($w->worker_pids), 4, 'four workers';

    my @keys = map { "K$_" } 1 .. 20;
    my $t0 = time;
    my $run = PBLedger::spawn(20, sub {
        $w->get(url('/buy/x', status => 'STARTED', tx => "K$_[0]"))->{status} });
    my @statuses = $run->collect;
    is_deeply \@statuses, [ (200) x 20 ], 'twenty checkouts answered 200';
    note sprintf 'captured within %.3f s', time - $t0;

    my @scheduled = grep { $_->{event} eq 'ABANDONED' }
                    @{ status_json($w, state => 'scheduled')->{deliveries} };
    is scalar @scheduled, 20, 'twenty scheduled';
    is scheduled_gauge($w, 'hook'), 20, 'hook: scheduled gauge 20';
    if (@scheduled) {
        my $r = $w->post("/status/deliveries/$scheduled[0]{id}/retry", '');
        is $r->{status}, 409, 'retry of a scheduled one: 409';
        my ($still) = grep { $_->{id} eq $scheduled[0]{id} }
                      @{ status_json($w, state => 'scheduled')->{deliveries} };
        ok $still, '... it stays scheduled';
    }

    $w->wait_received(hook => 20, 8);
    settle($w, 1.5, 'hook');
    my %per;
    for my $rec (@{ $w->received('hook') }) {
        my $b = eval { $JSON->decode($rec->{body}) } or next;
        $per{"$b->{event} $b->{fields}{tx}"}++;
    }
    is_deeply \%per, { map { ("ABANDONED $_" => 1) } @keys },
        'hook: exactly one ABANDONED per key';
    my %ids = map { $_->{headers}{'webhook-id'} => 1 } @{ $w->received('hook') };
    is scalar keys %ids, 20, 'twenty distinct webhook-ids';
    ok !grep({ $_->{headers}{'webhook-id'} ne derived_id('hook', JSON::PP->new->decode($_->{body})->{fields}{tx}, 'ABANDONED') }
             @{ $w->received('hook') }), '... each derived from its key';
    is scalar @{ $w->received('other') }, 0, 'other: nothing';
    my $last = 0;
    $last < $_->{time} and $last = $_->{time} for @{ $w->received('hook') };
    ok $last - $t0 < 5, 'all within 5 s of the captures'
        or diag sprintf 'last at %.3f s', $last - $t0;

    ok eventually(sub { (timeout_counters($w))[0] == 20 }, 3), 'timeout_events 20'
        or diag 'timeout_events ' . (timeout_counters($w))[0];
    is((timeout_counters($w))[1], 0, 'timeout_events_cancelled 0');
    is scheduled_gauge($w, 'hook'), 0, 'hook: scheduled gauge 0';
    my $delivered = grep { $_->{event} eq 'ABANDONED' }
                    @{ status_json($w, state => 'delivered')->{deliveries} };
    is $delivered, 20, 'status: twenty delivered';
    $w->stop;
};

subtest '6. once fired, ABANDONED is the last event; STARTED arms it again' => sub {
    buy($t, 'STARTED', 'E');
    my @e = wait_got($t, 'hook', 'E', 'ABANDONED', 1, 6);
    is scalar @e, 1, 'ABANDONED for E fired';
    ok eventually(sub { my ($d) = deliveries_of($t, 'E', 'ABANDONED');
                        $d && $d->{state} eq 'delivered' }, 3), '... delivered';

    my ($r, $delta) = $t->counted('/status/', sub { buy($t, 'ABANDONED', 'E') });
    is_deeply $delta, { examined => 1, duplicate => 1 },
        'a capture of ABANDONED for E: a duplicate';

    my $t1 = time;
    ($r, $delta) = $t->counted('/status/', sub { buy($t, 'STARTED', 'E') });
    is $delta->{examined}, 1, 'STARTED again for E: examined';
    ok !$delta->{duplicate}, '... not a duplicate' or diag $JSON->encode($delta);
    note 'STARTED again for E counted as: ' . $JSON->encode($delta);
    is scalar(deliveries_of($t, 'E', 'ABANDONED', state => 'scheduled')), 1,
        '... ABANDONED scheduled again';

    @e = wait_got($t, 'hook', 'E', 'ABANDONED', 2, 6);
    is scalar @e, 2, 'ABANDONED for E fired again';
    my $after = @e == 2 ? $e[1][0]{time} - $t1 : 0;
    ok $after >= 1.5 && $after < 4.5, '... about 2 s after the second STARTED'
        or diag sprintf 'arrived %.3f s after', $after;
    is $e[1] && $e[1][1]{fields}{status}, 'STARTED', "... the STARTED's fields";
    ok @e == 2 && iso_epoch($e[1][1]{created_at}) > iso_epoch($e[0][1]{created_at}) + 1,
        '... its own created_at';

    settle($t, 1, 'hook');
    is_deeply [ map { $_->[1]{event} } got($t, 'hook', 'E') ], [qw(ABANDONED ABANDONED)],
        'hook: for E, ABANDONED twice and nothing else';
};

subtest '7. every callback taking it: events=* with if=, and events= with if=' => sub {
    my $g = PBTest->new;
    $g->receiver($_) for qw(hook gated never other);
    $g->nginx_conf(timeout_conf($g, gated => 1));
    $g->start;

    my $t0 = time;
    buy($g, 'STARTED', 'G');
    # the capture's work comes after the client's last bytes: poll
    my %sched;
    eventually(sub {
        %sched = map { $_->{callback} => $_ }
                 deliveries_of($g, 'G', 'ABANDONED', state => 'scheduled');
        keys %sched == 2;
    }, 5);
    is_deeply [ sort keys %sched ], [qw(gated hook)],
        'scheduled for hook (events=) and gated (events=*, if= true for ABANDONED)';
    is scheduled_gauge($g, 'never'), 0,
        'none for never (if= true for STARTED only: evaluated for ABANDONED)';

    my @h = wait_got($g, 'hook', 'G', 'ABANDONED', 1, 6);
    my @gt = wait_got($g, 'gated', 'G', 'ABANDONED', 1, 2);
    settle($g, 1, qw(hook gated never other));
    is scalar @h, 1, 'hook: ABANDONED for G';
    is scalar @gt, 1, 'gated: ABANDONED for G';
    is $gt[0] && $gt[0][0]{headers}{'webhook-id'}, derived_id('gated', 'G', 'ABANDONED'),
        '... its own derived webhook-id';
    is_deeply [ map { scalar @{ $g->received($_) } } qw(never other) ], [ 0, 0 ],
        'never, other: nothing';
    my %state = map { $_->{callback} => $_->{state} } deliveries_of($g, 'G', 'ABANDONED');
    is_deeply \%state, { hook => 'delivered', gated => 'delivered' }, 'status: both delivered'
        or diag $JSON->encode(\%state);
    is_deeply [ timeout_counters($g) ], [ 2, 0 ], 'timeout_events 2, cancelled 0';
    note sprintf 'checked %.3f s after the capture', time - $t0;
    $g->stop;
};

$t->stop;
done_testing;
