# ?format=prometheus: the text exposition that Debian's promtool accepts
# (`promtool check metrics`), with the per-callback counters, the attempts
# by outcome, the gauges (pending, paused, disabled, zone bytes) and the
# two duration histograms, whose values follow what happened.

use strict;
use warnings;
use Test::More;
use PBTest qw(url eventually);

my $promtool = $ENV{PB_PROMTOOL} // PBTest->repo . '/build/tools/usr/bin/promtool';
plan skip_all => "no promtool at $promtool (make test fetches it)"
    unless -x $promtool;

my $t = PBTest->new;

$t->receiver('ok');
$t->receiver(down => status => 503);

$t->nginx_conf($t->checkout_conf(fields => [ status => '$.status' ],
                                  callbacks => <<'EOF'));
            postback_callback ok url=http://127.0.0.1:%%PORT_ok%%/;
            postback_callback down url=http://127.0.0.1:%%PORT_down%%/
                attempts=2 retry=1s disable_after=2;
EOF
$t->start;

# metric name and labels => value
sub metrics {
    my $r = $t->get('/status/?format=prometheus');
    die "metrics: $r->{status}\n" unless $r->{status} == 200;
    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        my ($series, $value) = /^(\S+) (\S+)$/ or die "bad line: $_\n";
        $m{$series} = $value;
    }
    return (\%m, $r);
}

$t->get(url('/buy/1', status => 'APPROVED'));
$t->get(url('/buy/2', status => 'APPROVED'));
$t->wait_received(ok => 2);

my ($m, $r);
ok eventually(sub {
    ($m) = metrics();
    ($m->{'postback_failed_total{callback="down"}'} // 0) == 2
}), 'both deliveries to "down" failed';

($m, $r) = metrics();
like $r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'content type of the text format';

my $file = $t->dir . '/metrics.txt';
open my $fh, '>', $file or die "$file: $!";
print $fh $r->{body};
close $fh;
my $out = `'$promtool' check metrics < '$file' 2>&1`;
is $?, 0, 'promtool check metrics accepts it' or diag $out;
is $out, '', '... with nothing to say';

is $m->{'postback_events_total{callback="ok"}'}, 2, 'events';
is $m->{'postback_delivered_total{callback="ok"}'}, 2, 'delivered';
is $m->{'postback_failed_total{callback="ok"}'}, 0, 'failed';
is $m->{'postback_dropped_total{callback="ok"}'}, 0, 'dropped';
is $m->{'postback_attempts_total{callback="ok",outcome="2xx"}'}, 2,
    'attempts by outcome: 2xx';
is $m->{'postback_attempts_total{callback="down",outcome="5xx"}'}, 4,
    '... 5xx';
is $m->{'postback_attempts_total{callback="down",outcome="error"}'}, 0,
    '... error';
is $m->{'postback_pending{callback="down"}'}, 0, 'pending gauge';
is $m->{'postback_disabled{callback="down"}'}, 1,
    'disabled gauge: disable_after=2 switched it off';
is $m->{'postback_disabled{callback="ok"}'}, 0, '... not the other';
is $m->{'postback_consecutive_failures{callback="down"}'}, 2,
    'consecutive failures';

# while disabled, a new event is paused
$t->get(url('/buy/3', status => 'APPROVED'));
ok eventually(sub {
    ($m) = metrics();
    ($m->{'postback_paused{callback="down"}'} // 0) == 1
        && $m->{'postback_delivered_total{callback="ok"}'} == 3
}), 'paused gauge';

is $m->{'postback_zone_size_bytes'}, 1048576, 'zone size';
ok $m->{'postback_zone_used_bytes'} > 0, 'zone bytes used';
is $m->{'postback_zone_used_bytes'} + $m->{'postback_zone_free_bytes'},
    1048576, '... and free, adding up';
is $m->{'postback_responses_events_total'}, 3, 'responses with an event';
is $m->{'postback_responses_skipped_total{reason="no_event"}'}, 0,
    'skips by reason';

for my $h (qw(postback_attempt_duration_seconds
              postback_delivery_duration_seconds))
{
    my $count = $m->{qq{${h}_count{callback="ok"}}};
    is $m->{qq{${h}_bucket{callback="ok",le="+Inf"}}}, $count,
        "$h: +Inf bucket is the count";
    is $count, 3, "... three observations";
    is $m->{qq{${h}_bucket{callback="ok",le="10.000"}}}, 3,
        '... all under 10 s';
    ok defined $m->{qq{${h}_sum{callback="ok"}}}, '... a sum';
}
is $m->{'postback_attempt_duration_seconds_count{callback="down"}'}, 4,
    'failed attempts have durations too';
is $m->{'postback_delivery_duration_seconds_count{callback="down"}'}, 0,
    '... but no delivery duration';

$t->stop;
done_testing;
