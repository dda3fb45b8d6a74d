#!/usr/bin/perl
# `make bench`, the figures only this module has, on loopback with one
# nginx worker, as ../shared/bench-peers runs its front:
#
#   latency  the time from the checkout's response to the receiver getting
#            its callback (X-Created: $msec at capture, $msec at the
#            receiver; 1 ms resolution), p50 and p99, at 50% and 90% of
#            the module's top rate measured first;
#   drain    a backlog of BENCH_DRAIN (50,000) deliveries kept while the
#            receiver was down (callback disabled), then enabled: how many
#            per second one worker delivers;
#   memory   zone bytes per pending delivery of a 300-byte payload (on
#            the fresh zone, before the other phases), and
#            the worker's private RSS (RssAnon: the zone's pages are
#            shared, and bounded by its size) after a warm-up and after
#            BENCH_DELIVERIES (1,000,000) deliveries.
#
# Usage: bench/module.pl /path/to/ngx_http_postback_module.so
# (needs nginx and wrk).  Prints a table and the targets, met or not.

use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(ceil);
use Time::HiRes qw(time sleep);

my $so = shift or die "usage: $0 module.so\n";
my $seconds = $ENV{BENCH_SECONDS} // 5;
my $conns = $ENV{BENCH_CONNS} // 32;
my $ndrain = $ENV{BENCH_DRAIN} // 50_000;
my $nmillion = $ENV{BENCH_DELIVERIES} // 1_000_000;

my $dir = tempdir('pb-bench-XXXX', TMPDIR => 1, CLEANUP => 1);
my %port = map { $_ => free_port() } qw(front checkout receiver);
my (@running, $wrk_pid);

END {
    kill 'INT', $wrk_pid if $wrk_pid;
    stop($_) for @running;
}

# the checkout document of ../shared/bench-peers, and a 300-byte payload
my $doc = '{"id":"evt_1","event":"PURCHASE_APPROVED","data":{"purchase":'
    . '{"status":"APPROVED","transaction":"HP1234567"},"product":{"id":1234},'
    . '"buyer":{"email":"ana@example.com"},"affiliate":{"code":"AFF9"}}}';
my $rest = '{"event":"APPROVED","tx":"HP1234567","pad":""}';
my $body = '{"event":"$postback_event","tx":"$postback_transaction",'
    . '"pad":"' . ('x' x (300 - length $rest)) . '"}';

start('backend', <<"EOF");
http {
    access_log off;
    log_format rcv '\$msec \$http_x_created';
    server {
        listen 127.0.0.1:$port{checkout} reuseport;
        location / {
            default_type application/json;
            return 200 '$doc';
        }
    }
    server {
        listen 127.0.0.1:$port{receiver} reuseport;
        location / {
            access_log $dir/received.log rcv;
            return 204;
        }
    }
}
EOF

my $front = start('front', <<"EOF", "load_module $so;");
http {
    access_log off;
    upstream checkout { server 127.0.0.1:$port{checkout}; keepalive 64; }

    postback_zone pb:256m;
    postback_field status \$.data.purchase.status;
    postback_field transaction \$.data.purchase.transaction;
    postback_event \$postback_status;

    server {
        listen 127.0.0.1:$port{front};
        location /api/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://checkout;
            postback on;
            postback_callback rcv url=http://127.0.0.1:$port{receiver}/hook
                events=APPROVED "header=X-Created: \$msec";
        }
        location /backlog/ {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://checkout;
            postback on;
            postback_callback backlog
                url=http://127.0.0.1:$port{receiver}/backlog
                events=APPROVED 'body=$body';
        }
        location /status/ {
            postback_status;
        }
    }
}
EOF

my @rows;

# ---------------------------------------------------------------- drain

# first, on a fresh zone: later phases leave freed records' slab chunks
# that a backlog would fill without growing the zone's pages

post('/status/callbacks/backlog/disable');
my $used0 = status()->{zone}{used};
wrk("/backlog/checkout", limit => $ndrain);
my $paused = 0;
wait_until(sub { ($paused = callback('backlog')->{paused}) >= $ndrain
                 || !$paused }, 10);
my $per = (status()->{zone}{used} - $used0) / ($paused || 1);
push @rows, [ 'zone bytes per pending 300-byte delivery', sprintf('%.1f', $per),
              '<= 1024', $per <= 1024 ];

truncate_log();
my $t0 = time;
post('/status/callbacks/backlog/enable');
wait_until(sub { callback('backlog')->{pending} == 0
                 && callback('backlog')->{paused} == 0 }, 120);
my $took = time - $t0;
my $got = () = read_log();
push @rows, [ "drain of $paused pending, one worker",
              sprintf('%.0f/s (%d in %.2f s)', $got / $took, $got, $took),
              '>= 10000/s', $got / $took >= 10_000 ];

# ---------------------------------------------------------------- latency

my $run = wrk("/api/checkout", duration => $seconds);
my $top = $run->{rps};
push @rows, [ 'top rate, one callback per checkout', sprintf('%.0f/s', $top) ];
push @rows, [ '... client latency p50, p99', "$run->{p50}, $run->{p99}" ];

for my $share (0.5, 0.9) {
    # what the last run left pending is not this run's
    wait_until(sub { callback('rcv')->{pending} == 0 }, 60);
    truncate_log();
    # each connection waits between its requests: the wait is the period
    # less the response time, which a short first run measures
    my $period = $conns * 1000 / ($top * $share);
    my $try = wrk("/api/checkout", duration => 2, pace_ms => $period);
    my $response = $conns * 1000 / $try->{rps} - $period;
    wait_until(sub { callback('rcv')->{pending} == 0 }, 60);
    truncate_log();
    $run = wrk("/api/checkout", duration => $seconds,
               pace_ms => $period > $response ? $period - $response : 0);
    wait_until(sub { callback('rcv')->{pending} == 0 }, 60);
    my @lat = sort { $a <=> $b } latencies();
    my $label = sprintf 'at %.0f%% (%.0f/s)', $run->{rps} / $top * 100,
                        $run->{rps};
    push @rows, [ "delivery latency p50 $label", ms(pct(\@lat, 50)), '<= 2 ms',
                  pct(\@lat, 50) <= 2 ];
    push @rows, [ "delivery latency p99 $label", ms(pct(\@lat, 99)), '<= 10 ms',
                  pct(\@lat, 99) <= 10 ];
    push @rows, [ "callbacks received $label",
                  sprintf('%d of %d', scalar @lat, $run->{requests}) ];
    push @rows, [ "client latency p50, p99 $label",
                  "$run->{p50}, $run->{p99}" ];
}

# ---------------------------------------------------------------- RSS

my $worker = worker_pid($front);
wrk("/api/checkout", limit => 100_000);
wait_until(sub { callback('rcv')->{pending} == 0 }, 60);
my $rss0 = rss($worker);
my $before = callback('rcv')->{delivered};
wrk("/api/checkout", limit => $nmillion);
wait_until(sub { callback('rcv')->{pending} == 0 }, 60);
my $done = callback('rcv')->{delivered} - $before;
my $rss1 = rss($worker);
my $growth = ($rss1 - $rss0) / $rss0 * 100;
push @rows, [ "worker private RSS, after $done more deliveries",
              sprintf('%d -> %d KiB (%+.1f%%)', $rss0, $rss1, $growth),
              '<= +5%', $growth <= 5 ];

print "\nmodule-only figures (one worker, loopback)\n";
for my $r (@rows) {
    printf "%-52s %-26s %-10s %s\n", $r->[0], $r->[1], $r->[2] // '',
        defined $r->[3] ? ($r->[3] ? 'met' : 'NOT met') : '';
}

# ---------------------------------------------------------------- helpers

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1) or die "no port: $!\n";
    return $s->sockport;
}

sub start {
    my ($name, $http, $main) = @_;
    my $conf = "$dir/$name.conf";
    open my $fh, '>', $conf or die "$conf: $!\n";
    print $fh ($main // ''), "\nworker_processes 1;\npid $dir/$name.pid;\n",
        "error_log $dir/$name.err warn;\nevents { worker_connections 8192; }\n",
        $http;
    close $fh;
    system('nginx', '-p', $dir, '-c', $conf) == 0
        or die "nginx $name failed:\n" . `cat $dir/$name.err`;
    push @running, $name;
    sleep 0.3;
    return $name;
}

sub stop {
    my ($name) = @_;
    my $pid = `cat $dir/$name.pid 2>/dev/null`;
    kill 'QUIT', $pid if $pid && $pid =~ /^(\d+)/;
}

sub worker_pid {
    my ($name) = @_;
    chomp(my $master = `cat $dir/$name.pid`);
    chomp(my $w = `pgrep -P $master | head -1`);
    return $w;
}

sub rss {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or die "/proc/$pid: $!\n";
    while (<$fh>) { return $1 if /^RssAnon:\s+(\d+)/ }
    die "no RssAnon for $pid\n";
}

# runs wrk on the front for a duration (paced: each connection waits
# pace_ms between its requests), or until the front examined limit more
# responses: wrk stops early, with its figures, on SIGINT
sub wrk {
    my ($path, %o) = @_;
    my $lua = "$dir/wrk.lua";
    open my $fh, '>', $lua or die "$lua: $!\n";
    # wrk takes whole ms: rounded up or down at random, the mean is right
    print $fh $o{pace_ms}
              ? "function delay() return math.floor($o{pace_ms} "
                . "+ math.random()) end\n"
              : '';
    close $fh;
    my $d = $o{limit} ? 3600 : $o{duration};
    my $examined = status()->{capture}{examined};
    $wrk_pid = open my $out, '-|',
        "exec taskset -c 1 wrk -t1 -c$conns -d${d}s -s $lua --latency "
        . "http://127.0.0.1:$port{front}$path 2>&1"
        or die "wrk: $!\n";
    if ($o{limit}) {
        wait_until(sub { status()->{capture}{examined} - $examined
                         >= $o{limit} }, 600);
        kill 'INT', $wrk_pid;
    }
    my $text = do { local $/; <$out> };
    close $out;
    $wrk_pid = undef;
    my ($requests) = $text =~ /(\d+) requests in/ or die "wrk: $text\n";
    my ($rps) = $text =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p50) = $text =~ /^\s+50%\s+(\S+)/m;
    my ($p99) = $text =~ /^\s+99%\s+(\S+)/m;
    return { requests => $requests, rps => $rps, p50 => $p50, p99 => $p99 };
}

sub get_json {
    my ($method, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port{front}")
        or die "front: $!\n";
    print $s "$method $path HTTP/1.0\r\nHost: bench\r\n\r\n";
    local $/;
    my $res = <$s>;
    my ($b) = $res =~ /\r\n\r\n(.*)$/s;
    return decode_json($b);
}

sub status { get_json(GET => '/status/?limit=0') }
sub post { get_json(POST => $_[0]) }

sub callback {
    my ($name) = @_;
    my ($c) = grep { $_->{name} eq $name } @{ status()->{callbacks} };
    return $c;
}

sub wait_until {
    my ($cond, $timeout) = @_;
    my $end = time + $timeout;
    until ($cond->()) {
        die "bench: timed out\n" if time > $end;
        sleep 0.05;
    }
}

sub truncate_log { truncate "$dir/received.log", 0 if -e "$dir/received.log" }

sub read_log {
    open my $fh, '<', "$dir/received.log" or return ();
    return <$fh>;
}

# ms from capture to receipt of each callback in the log: $msec is
# seconds.milliseconds, taken as whole ms (no floating-point noise)
sub latencies {
    return map { /^(\d+)\.(\d{3}) (\d+)\.(\d{3})$/
                 ? ($1 . $2) - ($3 . $4) : () } read_log();
}

# nearest rank
sub pct {
    my ($sorted, $p) = @_;
    return 0 unless @$sorted;
    return $sorted->[ceil(@$sorted * $p / 100) - 1];
}

sub ms { sprintf '%d ms', $_[0] }
