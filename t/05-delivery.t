# Delivery: how the module sends callbacks, and what the status page
# records about each attempt.  Receivers are at 127.0.0.1, so nginx's own
# connections send (the nginx engine); t/05-delivery-curl.t runs this file
# again with PB_RECEIVER_HOST=localhost, a name, so that libcurl sends.
#
# With one worker:
# - a receiver taking 5 s does not delay the client; the delivery is
#   "sending" meanwhile and recorded as delivered later, with its duration;
# - sequential deliveries to one receiver reuse one connection, and a
#   receiver restarting (its idle connection gone) gets the next one on a new
#   connection;
# - the status page names each callback's engine;
# - a host name in the url is resolved (curl's resolver on the event loop);
# - a 2 MB body arrives whole; of a long answer the first 256 bytes are kept
#   (invalid UTF-8 in them still gives a valid status page);
# - redirects are not followed (302 is a failure; the target gets nothing);
# - 500, 404, connection refused and a connection closed without an answer
#   are failed attempts, with the status or the engine's error text; 204 is a
#   success; the callback counters (failed, attempts, consecutive_failures,
#   last_status, last_error) follow, and a success resets
#   consecutive_failures;
# - TLS is verified: a self-signed receiver fails with a certificate error,
#   and curl's OpenSSL errors are not left for nginx's own TLS (an [alert]
#   "ignoring stale global SSL error" in the error log);
# - timeout=1s against a receiver taking 3 s: failed after about 1 s, the
#   client unaffected; a receiver that sent "200 OK" but not the rest of its
#   answer in time is a failure too;
# - max_conns=1: three deliveries to a slow receiver, one at a time;
#   max_conns=3: seven deliveries, three at a time;
# - a delivery in flight does not hold a graceful stop.
# With two workers:
# - 40 checkouts over separate connections: each delivered exactly once, by
#   both workers, and the status page shows the shared totals whichever
#   worker answers.

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use PBSample;
use PBTest;

my $JSON = JSON::PP->new->utf8;

# where the plain http:// receivers are: an address or a name
my $HOST = $ENV{PB_RECEIVER_HOST} // '127.0.0.1';
my $ENGINE = $HOST eq '127.0.0.1' ? 'nginx' : 'curl';

my $t = PBTest->new;
my $dir = $t->dir;

# Self-signed certificates for the TLS receivers (extra servers of the
# nginx under test), signed by no trusted CA: one valid for 127.0.0.1 and
# localhost, one for another host.
$t->self_signed_cert;
$t->self_signed_cert(prefix => 'other-', names => 'DNS:other.example');

# ---------------------------------------------------------------- servers

$t->upstream(shop => \&PBSample::checkout);
# a 2 MB document
my $PAD = join '', map { sprintf '%07d,', $_ } 1 .. 2 ** 18;
$t->upstream(big => sub {
    { headers => [ 'Content-Type' => 'application/json' ],
      body => $JSON->encode({ data => { purchase => { status => 'APPROVED', transaction => 'BIG' } },
                              pad => $PAD }) };
});

$t->receiver(slow => delay => 5);
$t->receiver('reuse');
$t->receiver(redirect => respond => sub {
    { status => 302, headers => [ Location => 'http://127.0.0.1:' . $t->port('moved') . '/moved' ],
      body => 'moved' };
});
$t->receiver('moved');
# 500 twice, then 200: consecutive_failures must go back to 0.
$t->receiver(flaky => respond => sub {
    my ($req, $n) = @_;
    return $n <= 2 ? { status => 500, body => 'internal boom' } : { status => 200, body => 'fine' };
});
$t->receiver(missing => status => 404);
# closes the connection without answering
$t->receiver(hangup => respond => sub { '' });
$t->receiver(nocontent => status => 204);
# a long answer that starts with a byte that is not UTF-8
$t->receiver(chatty => respond => sub { { status => 200, body => "\xff" . ('x' x 9999) } });
$t->receiver('named');
$t->receiver('bigrecv');
$t->receiver(sleepy => delay => 3);
$t->receiver(serial => delay => 0.5);
$t->receiver(triple => delay => 0.5);
# the status line and the first 1000 bytes at once, the rest 2 s later
$t->receiver(dribble => respond => sub {
    { status => 200, body => 'x' x 2000, chunk_size => 1000, body_delay => 2 };
});
$t->receiver('mass');
# A port nothing ever listens on (PORT_closed): connections are refused.
$t->port('closed');

my $common = $t->http_common;
my $http_head = <<"EOF";
load_module %%MODULE%%;
events {}
http {
$common
    postback_zone delivery:16m;
    postback_field status \$.data.purchase.status;
    postback_field transaction \$.data.purchase.transaction;
    postback_event \$postback_status;
EOF

$t->nginx_conf(<<"EOF");
worker_processes 1;
$http_head
    server {
        listen 127.0.0.1:%%PORT_front%%;
        postback on;
        # attempts=1 where a test looks at one attempt's outcome: t/08 retries

        location /slow/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback slow url=http://$HOST:%%PORT_slow%%/hook;
        }
        location /reuse/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback reuse url=http://$HOST:%%PORT_reuse%%/hook;
        }
        location /redirect/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback redirect url=http://$HOST:%%PORT_redirect%%/hook attempts=1;
        }
        location /outcome/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback flaky url=http://$HOST:%%PORT_flaky%%/hook attempts=1;
            postback_callback missing url=http://$HOST:%%PORT_missing%%/hook attempts=1;
            postback_callback refused url=http://$HOST:%%PORT_closed%%/hook attempts=1;
            postback_callback hangup url=http://$HOST:%%PORT_hangup%%/hook attempts=1;
            postback_callback nocontent url=http://$HOST:%%PORT_nocontent%%/hook;
            postback_callback chatty url=http://$HOST:%%PORT_chatty%%/hook;
        }
        location /named/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback named url=http://localhost:%%PORT_named%%/hook;
        }
        location /big/ {
            proxy_pass http://127.0.0.1:%%PORT_big%%;
            postback_buffer_size 4m;
            postback_callback big url=http://$HOST:%%PORT_bigrecv%%/hook;
        }
        location /tls/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback tls url=https://$HOST:%%PORT_tls%%/hook attempts=1;
            postback_callback tls_trusted url=https://$HOST:%%PORT_tls%%/trusted
                attempts=1 ca_file=$dir/cert.pem;
            postback_callback tls_other url=https://$HOST:%%PORT_tlsother%%/hook
                attempts=1 ca_file=$dir/other-cert.pem;
        }
        location /resume/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback resume url=https://$HOST:%%PORT_tlsclose%%/hook
                ca_file=$dir/cert.pem max_conns=1;
        }
        location /timeout/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback sleepy url=http://$HOST:%%PORT_sleepy%%/hook attempts=1 timeout=1s;
            postback_callback dribble url=http://$HOST:%%PORT_dribble%%/hook attempts=1 timeout=1s;
        }
        location /serial/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback serial url=http://$HOST:%%PORT_serial%%/hook max_conns=1;
        }
        location /triple/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback triple url=http://$HOST:%%PORT_triple%%/hook max_conns=3;
        }
        # a checkout that delivers nothing: its callback takes no event
        location /plain/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback plain url=http://$HOST:%%PORT_closed%%/hook
                events=NONE;
        }
        location /status { postback_status; }
    }

    server {
        listen 127.0.0.1:%%PORT_tls%% ssl;
        ssl_certificate %%DIR%%/cert.pem;
        ssl_certificate_key %%DIR%%/key.pem;
        location / { return 200 "tls ok\\n"; }
    }

    # closes each connection: the next one resumes the TLS session
    log_format resumed "\$ssl_session_reused";
    server {
        listen 127.0.0.1:%%PORT_tlsclose%% ssl;
        ssl_certificate %%DIR%%/cert.pem;
        ssl_certificate_key %%DIR%%/key.pem;
        keepalive_timeout 0;
        access_log %%DIR%%/resumed.log resumed;
        location / { return 200 "tls ok\\n"; }
    }

    server {
        listen 127.0.0.1:%%PORT_tlsother%% ssl;
        ssl_certificate %%DIR%%/other-cert.pem;
        ssl_certificate_key %%DIR%%/other-key.pem;
        location / { return 200 "tls ok\\n"; }
    }
}
EOF
$t->start;

# ---------------------------------------------------------------- helpers

sub status {
    my (%opt) = @_;
    my $r = $t->get('/status?limit=1000', %opt);
    die "status page: " . ($r->{status} // $r->{error}) . "\n" unless ($r->{status} // 0) == 200;
    my $st = $JSON->decode($r->{body});
    $st->{_worker} = $r->{headers}{'x-worker'};
    return $st;
}

sub cb_status {
    my ($st, $name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ $st->{callbacks} };
    return $cb // {};
}

# Deliveries of a callback on a status page, oldest first.
sub deliveries {
    my ($st, $name) = @_;
    return reverse grep { $_->{callback} eq $name } @{ $st->{deliveries} };
}

# Polls the status page until $cond->($st) holds; returns the last page.
sub wait_status {
    my ($cond, $timeout, %opt) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $st = status(%opt);
        return $st if $cond->($st) || time > $deadline;
        sleep 0.05;
    }
}

# Until each named callback finished (delivered or failed) $n deliveries.
sub wait_finished {
    my ($n, @names) = @_;
    return wait_status(sub {
        my ($st) = @_;
        !grep { my $cb = cb_status($st, $_); ($cb->{delivered} // 0) + ($cb->{failed} // 0) < $n } @names;
    });
}

sub checkout {
    my ($path, %opt) = @_;
    my $r = $t->get($path, %opt);
    is $r->{status}, 200, "checkout $path answered" or diag $r->{error};
    return $r;
}

my $TIME_RE = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

# ---------------------------------------------------------------- engines

subtest "the engine of each callback: $ENGINE for http://$HOST" => sub {
    my $st = status();
    is cb_status($st, 'reuse')->{engine}, $ENGINE, "http://$HOST: $ENGINE";
    is cb_status($st, 'named')->{engine}, 'curl', 'http://localhost: curl';
    is cb_status($st, 'tls')->{engine}, $ENGINE, "https://$HOST: $ENGINE";
};

# ---------------------------------------------------------------- slow receiver

subtest 'a slow receiver does not delay the client' => sub {
    my $r = checkout('/slow/buy?status=APPROVED&transaction=S1');
    cmp_ok $r->{elapsed}, '<', 1, 'client answered at once'
        or diag "elapsed $r->{elapsed}";
    my $recs = $t->wait_received(slow => 1, 3);
    is scalar @$recs, 1, 'the receiver got the callback (and sits on it for 5 s)';

    # While the receiver sleeps, the (only) worker keeps serving.
    $r = checkout('/plain/buy?status=APPROVED');
    cmp_ok $r->{elapsed}, '<', 1, 'another checkout answered at once';
    my $start = time;
    my $st = status();
    cmp_ok time - $start, '<', 1, 'the status page answers at once';
    my $d = (deliveries($st, 'slow'))[0] // {};
    is $d->{state}, 'sending', 'delivery in flight';
    is_deeply $d->{attempts}, [], 'no finished attempt yet';
    is cb_status($st, 'slow')->{pending}, 1, 'callback: 1 pending';

    $st = wait_finished(1, 'slow');
    $d = (deliveries($st, 'slow'))[0] // {};
    is $d->{state}, 'delivered', 'delivered in the end';
    is scalar @{ $d->{attempts} // [] }, 1, 'one attempt';
    my $a = $d->{attempts}[0] // {};
    is $a->{status}, 200, 'attempt status';
    is $a->{error}, '', 'no error';
    is $a->{response}, 'ok', "the receiver's answer";
    like $a->{at}, $TIME_RE, 'attempt time';
    # the receiver answers 5 s after it got the request
    cmp_ok $a->{duration_ms}, '>=', 4900, 'attempt duration: the receiver took 5 s';
    cmp_ok $a->{duration_ms}, '<', 7000, '... not much more';
    my $cb = cb_status($st, 'slow');
    is_deeply [ @$cb{qw(events delivered failed pending attempts consecutive_failures)} ],
        [ 1, 1, 0, 0, 1, 0 ], 'callback counters';
    cmp_ok $cb->{last_latency_ms}, '>=', 4900, 'last_latency_ms';
    is $cb->{last_status}, 200, 'last_status';
};

# ---------------------------------------------------------------- keep-alive

subtest 'sequential deliveries reuse one connection' => sub {
    for my $i (1 .. 5) {
        checkout("/reuse/buy?status=APPROVED&transaction=R$i");
        # the next one only after this one is done, so the connection is idle
        wait_finished($i, 'reuse');
    }
    my $recs = $t->received('reuse');
    is scalar @$recs, 5, 'five callbacks';
    is_deeply [ map { $_->{conn} } @$recs ], [ ($recs->[0]{conn}) x 5 ],
        'all on one connection';
    is_deeply [ map { $_->{conn_req} } @$recs ], [ 1 .. 5 ], 'one after the other on it';
    is cb_status(status(), 'reuse')->{delivered}, 5, 'all delivered';

    # The receiver restarts: the idle connection kept is dead now.
    $t->stop_server('reuse');
    $t->receiver('reuse');
    checkout('/reuse/buy?status=APPROVED&transaction=R6');
    my $st = wait_finished(6, 'reuse');
    $recs = $t->received('reuse');
    is scalar @$recs, 6, 'the callback after a restart arrived';
    # (a restarted receiver numbers its connections from 1 again: compare ports)
    isnt $recs->[5]{peer_port}, $recs->[0]{peer_port}, '... on a new connection';
    is_deeply [ @{ cb_status($st, 'reuse') }{qw(delivered failed attempts)} ], [ 6, 0, 6 ],
        '... delivered at the first attempt';
};

# ---------------------------------------------------------------- host name

subtest 'a host name is resolved' => sub {
    my $r = checkout('/named/buy?status=APPROVED&transaction=N1');
    cmp_ok $r->{elapsed}, '<', 1, 'client answered at once';
    my $st = wait_finished(1, 'named');
    my $d = (deliveries($st, 'named'))[0] // {};
    is $d->{state}, 'delivered', 'url=http://localhost:PORT/ delivered';
    my ($rec) = @{ $t->received('named') };
    is $rec->{headers}{host}, 'localhost:' . $t->port('named'), 'Host header';
};

# ---------------------------------------------------------------- large body

subtest 'a 2 MB body arrives whole' => sub {
    my $r = $t->get('/big/buy');
    is $r->{status}, 200, 'checkout answered';
    my $st = wait_finished(1, 'big');
    my $d = (deliveries($st, 'big'))[0] // {};
    is $d->{state}, 'delivered', 'delivered';
    my ($rec) = @{ $t->received('bigrecv') };
    my $body = eval { $JSON->decode($rec->{body} // '') } // {};
    is $body->{fields}{transaction}, 'BIG', 'fields';
    ok defined $body->{data}{pad} && $body->{data}{pad} eq $PAD, 'data: every byte of the document';
};

# ---------------------------------------------------------------- redirect

subtest 'redirects are not followed' => sub {
    checkout('/redirect/buy?status=APPROVED&transaction=X1');
    my $st = wait_finished(1, 'redirect');
    is scalar @{ $t->received('redirect') }, 1, 'the receiver got the callback';
    # the attempt is over: a followed redirect would have arrived already
    is scalar @{ $t->received('moved') }, 0, 'the Location target got nothing';
    my $d = (deliveries($st, 'redirect'))[0] // {};
    is $d->{state}, 'failed', 'delivery failed';
    is $d->{attempts}[0]{status}, 302, 'attempt status 302';
    is $d->{attempts}[0]{response}, 'moved', 'response recorded';
    my $cb = cb_status($st, 'redirect');
    is_deeply [ @$cb{qw(delivered failed attempts last_status)} ], [ 0, 1, 1, 302 ],
        'callback counters';
};

# ---------------------------------------------------------------- outcomes

subtest 'failed attempts: non-2xx, refused, no answer' => sub {
    my @failing = qw(flaky missing refused hangup);
    my @names = (@failing, qw(nocontent chatty));

    checkout('/outcome/buy?status=APPROVED&transaction=F1');
    my $st = wait_finished(1, @names);

    my %cb = map { $_ => cb_status($st, $_) } @names;
    my %d = map { $_ => (deliveries($st, $_))[0] // {} } @names;
    my %a = map { $_ => $d{$_}{attempts}[0] // {} } @names;

    is_deeply [ map { $d{$_}{state} } @names ],
        [qw(failed failed failed failed delivered delivered)], 'delivery states';
    is_deeply [ @{ $a{flaky} }{qw(status error response)} ], [ 500, '', 'internal boom' ],
        '500: attempt status, no error, the answer';
    is_deeply [ @{ $a{missing} }{qw(status error response)} ], [ 404, '', 'ok' ],
        '404: attempt status';
    is $a{refused}{status}, 0, 'refused: no status';
    like $a{refused}{error}, qr/connect/i, "refused: the engine's error text" or diag explain $a{refused};
    is $a{hangup}{status}, 0, 'closed without an answer: no status';
    like $a{hangup}{error}, qr/empty reply/i, "closed without an answer: the engine's error text"
        or diag explain $a{hangup};
    is $a{nocontent}{status}, 204, '204 is a success';
    is $a{chatty}{response}, "\x{FFFD}" . ('x' x 255),
        'long answer: its first 256 bytes, the invalid byte replaced';

    for my $name (@failing) {
        my $c = $cb{$name};
        is_deeply [ @$c{qw(events delivered failed pending attempts consecutive_failures)} ],
            [ 1, 0, 1, 0, 1, 1 ], "$name: counters after one failure";
        like $c->{last_attempt_at}, $TIME_RE, "$name: last_attempt_at";
        cmp_ok $c->{last_latency_ms}, '>=', 0, "$name: last_latency_ms";
    }
    is_deeply [ map { $cb{$_}{last_status} } @failing ], [ 500, 404, 0, 0 ], 'last_status';
    is_deeply [ map { $cb{$_}{last_error} } @failing ],
        [ '', '', $a{refused}{error}, $a{hangup}{error} ], 'last_error: transport errors only';

    # Two more: the flaky receiver answers 500 then 200.
    for my $i (2, 3) {
        checkout("/outcome/buy?status=APPROVED&transaction=F$i");
        $st = wait_finished($i, @names);
    }
    %cb = map { $_ => cb_status($st, $_) } @names;
    my @keys = qw(events delivered failed pending attempts consecutive_failures last_status);
    is_deeply [ @{ $cb{flaky} }{@keys, 'last_error'} ], [ 3, 1, 2, 0, 3, 0, 200, '' ],
        'flaky: a success resets consecutive_failures';
    is_deeply [ @{ $cb{missing} }{@keys} ], [ 3, 0, 3, 0, 3, 3, 404 ], '404: three failures in a row';
    is_deeply [ @{ $cb{refused} }{@keys} ], [ 3, 0, 3, 0, 3, 3, 0 ], 'refused: three failures in a row';
    is_deeply [ @{ $cb{hangup} }{@keys} ], [ 3, 0, 3, 0, 3, 3, 0 ], 'no answer: three failures in a row';
    is_deeply [ @{ $cb{nocontent} }{@keys} ], [ 3, 3, 0, 0, 3, 0, 204 ], '204: three successes';
    like $cb{refused}{last_error}, qr/connect/i, 'refused: last_error';
    is_deeply [ map { $_->{state} } deliveries($st, 'flaky') ], [qw(failed failed delivered)],
        'flaky: delivery states, oldest first';
    is_deeply [ map { $_->{status} } @{ $t->received('flaky') } ], [ 500, 500, 200 ],
        'the receiver saw each delivery once (one attempt each)';
};

# ---------------------------------------------------------------- TLS

subtest 'TLS certificates are verified' => sub {
    checkout('/tls/buy?status=APPROVED&transaction=T1');
    my $st = wait_finished(1, 'tls');
    my $d = (deliveries($st, 'tls'))[0] // {};
    is $d->{state}, 'failed', 'self-signed receiver: failed';
    is $d->{attempts}[0]{status}, 0, 'no HTTP status';
    like $d->{attempts}[0]{error}, qr/certificate/i, 'certificate verification error'
        or diag explain $d;
    like cb_status($st, 'tls')->{last_error}, qr/certificate/i, 'last_error';
    is $d->{attempts}[0]{response}, '', 'nothing answered';

    # The TLS receiver is this very worker: once it has seen the client's
    # alert (curl's, which checks during the handshake), its own OpenSSL
    # calls must find no error left by curl's.
    my $deadline = time + 3;
    sleep 0.05 until $ENGINE ne 'curl'
        || $t->error_log =~ /SSL_do_handshake\(\) failed/ || time > $deadline;
    my ($stale) = $t->error_log =~ /^(.*stale global SSL error.*)$/m;
    ok !$stale, "curl's OpenSSL errors are not left in the worker's error queue"
        or diag $stale;

    # the same receiver, its certificate trusted with ca_file=
    $st = wait_finished(1, 'tls_trusted');
    my $trusted = (deliveries($st, 'tls_trusted'))[0] // {};
    is $trusted->{state}, 'delivered', 'ca_file= trusts it: delivered'
        or diag explain $trusted;
    is $trusted->{attempts}[0]{response}, "tls ok\n", 'its answer';

    # a certificate the CA store trusts, but for another host
    $st = wait_finished(1, 'tls_other');
    my $other = (deliveries($st, 'tls_other'))[0] // {};
    is $other->{state}, 'failed', 'a certificate for another host: failed';
    like $other->{attempts}[0]{error}, qr/certificate|host name/i,
        'the error says so' or diag explain $other;
};

subtest 'TLS sessions are resumed on new connections' => sub {
    checkout("/resume/buy?status=APPROVED&transaction=R$_") for 1 .. 4;
    my $st = wait_finished(4, 'resume');
    is cb_status($st, 'resume')->{delivered}, 4, 'four delivered';
    my @reused = split /\n/, PBTest::_slurp("$dir/resumed.log");
    is scalar @reused, 4, 'over four connections';
    # curl keeps its sessions too, per easy handle: not asserted for it
    is_deeply [ @reused[1 .. 3] ], [ ('r') x 3 ],
        'the second and later ones resume the first session'
        or diag "ssl_session_reused: @reused" if $ENGINE eq 'nginx';
};

# ---------------------------------------------------------------- timeout

subtest 'timeout=1s' => sub {
    my $r = checkout('/timeout/buy?status=APPROVED&transaction=W1');
    cmp_ok $r->{elapsed}, '<', 1, 'client answered at once';
    my $st = wait_finished(1, qw(sleepy dribble));
    is scalar @{ $t->received('sleepy') }, 1, 'the receiver got the callback';
    my $d = (deliveries($st, 'sleepy'))[0] // {};
    is $d->{state}, 'failed', 'failed';
    my $a = $d->{attempts}[0] // {};
    like $a->{error}, qr/timed out/i, 'timeout error' or diag explain $a;
    is $a->{status}, 0, 'no status';
    cmp_ok $a->{duration_ms}, '>=', 950, 'gave up after about 1 s';
    cmp_ok $a->{duration_ms}, '<', 2000, '... not after 3 s';

    # A receiver that sent "200 OK" but not its whole answer in time: the
    # attempt ended in a timeout all the same.
    $d = (deliveries($st, 'dribble'))[0] // {};
    $a = $d->{attempts}[0] // {};
    like $a->{error}, qr/timed out/i, 'timeout during the answer: error' or diag explain $a;
    is $d->{state}, 'failed', '... the delivery failed';
    is cb_status($st, 'dribble')->{failed}, 1, '... counted as failed';
};

# ---------------------------------------------------------------- max_conns

subtest 'max_conns=1: one delivery at a time' => sub {
    for my $i (1 .. 3) {
        my $r = checkout("/serial/buy?status=APPROVED&transaction=M$i");
        cmp_ok $r->{elapsed}, '<', 1, "client $i answered at once";
    }
    my $st = wait_finished(3, 'serial');
    my $recs = $t->received('serial');
    is scalar @$recs, 3, 'three callbacks';
    is_deeply [ map { $_->{state} } deliveries($st, 'serial') ], [ ('delivered') x 3 ],
        'all delivered';
    # The receiver answers 0.5 s after each arrival: with one transfer at a
    # time, the next may only arrive after that.
    for my $i (1, 2) {
        cmp_ok $recs->[$i]{time} - $recs->[ $i - 1 ]{time}, '>=', 0.45,
            'callback ' . ($i + 1) . " arrived after callback $i was answered";
    }
    is_deeply [ sort map { $JSON->decode($_->{body})->{fields}{transaction} } @$recs ],
        [qw(M1 M2 M3)], 'each checkout once';
};

subtest 'max_conns=3: three deliveries at a time' => sub {
    for my $i (1 .. 7) {
        checkout("/triple/buy?status=APPROVED&transaction=P$i");
    }
    my $st = wait_finished(7, 'triple');
    my $recs = $t->received('triple');
    is scalar @$recs, 7, 'seven callbacks';
    is cb_status($st, 'triple')->{delivered}, 7, 'all delivered';
    # Each transfer lasts from its arrival until 0.5 s later: count how many
    # were in flight at each arrival.
    my $most = 0;
    for my $i (0 .. $#$recs) {
        my $busy = grep { $recs->[$_]{time} + 0.45 > $recs->[$i]{time} } 0 .. $i;
        $most = $busy if $busy > $most;
    }
    is $most, 3, 'at most 3 in flight, and 3 did run in parallel';
};

# The slow receiver holds a delivery for 5 s: a graceful stop lets it end,
# as nginx lets a client's request end, rather than send it again later.
checkout('/slow/buy?status=APPROVED&transaction=S2');
$t->wait_received(slow => 2, 3);
my $stopping = time;
$t->stop;
cmp_ok time - $stopping, '>', 3, 'a graceful stop waits for a delivery in flight';

# ---------------------------------------------------------------- two workers

# reuseport spreads the client connections over both workers; each worker
# names itself in the status page's answers and in the callbacks it sends.
$t->nginx_conf(<<"EOF");
worker_processes 2;
$http_head
    server {
        listen 127.0.0.1:%%PORT_front2%% reuseport;
        postback on;
        # attempts=1 where a test looks at one attempt's outcome: t/08 retries
        location /mass/ {
            proxy_pass http://127.0.0.1:%%PORT_shop%%;
            postback_callback mass url=http://$HOST:%%PORT_mass%%/hook
                "header=X-Worker: \$pid";
        }
        location /status {
            postback_status;
            add_header X-Worker \$pid;
        }
    }
}
EOF
$t->start;

subtest 'two workers: each checkout delivered once, shared totals' => sub {
    my @workers = $t->worker_pids;
    is scalar @workers, 2, 'two workers';
    my $n = 40;
    my $ok = 0;
    for my $i (1 .. $n) {
        my $r = $t->get("/mass/buy?status=APPROVED&transaction=W$i", port => 'front2');
        $ok++ if ($r->{status} // 0) == 200;
    }
    is $ok, $n, "$n checkouts answered";

    my $recs = $t->wait_received(mass => $n, 15);
    wait_status(sub { (cb_status($_[0], 'mass')->{delivered} // 0) >= $n }, 15, port => 'front2');
    is_deeply [ sort map { $JSON->decode($_->{body})->{fields}{transaction} } @$recs ],
        [ sort map { "W$_" } 1 .. $n ], 'every checkout arrived';
    my %senders = map { ($_->{headers}{'x-worker'} // '?') => 1 } @$recs;
    is_deeply [ sort keys %senders ], [ sort @workers ], 'sent by both workers';

    my %answered;
    for (1 .. 20) {
        my $st = status(port => 'front2');
        my $worker = $st->{_worker} // '?';
        $answered{$worker}++;
        my $cb = cb_status($st, 'mass');
        is_deeply [ @$cb{qw(events delivered failed pending attempts)},
                    $st->{capture}{events}, scalar @{ $st->{deliveries} } ],
            [ $n, $n, 0, 0, $n, $n, $n ], "totals as worker $worker sees them";
    }
    is_deeply [ sort keys %answered ], [ sort @workers ], 'both workers answered the status page';

    my $st = status(port => 'front2');
    my @ds = @{ $st->{deliveries} };
    is_deeply [ map { "$_->{state} " . scalar @{ $_->{attempts} } } @ds ], [ ('delivered 1') x $n ],
        'status page: every delivery delivered at the first attempt';
    my %ids = map { ($_->{headers}{'webhook-id'} // '?') => 1 } @$recs;
    is scalar keys %ids, $n, 'webhook-ids unique across both workers';
    is_deeply [ sort keys %ids ], [ sort map { $_->{id} } @ds ], '... and those of the status page';

    # after all that, still no second copy of any delivery
    is scalar @{ $t->received('mass') }, $n, 'each delivered exactly once';
};

$t->stop;
done_testing;
