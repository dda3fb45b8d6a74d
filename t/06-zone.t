# The shared zone: with two workers every delivery and attempt is recorded
# once and the counters are the same whichever worker answers the status
# page; the zone, its counters and history survive a reload; a full zone
# evicts finished records; the status location's own answers.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use PBTest;
use PBSample;

sub conf {
    my ($t, $zone) = @_;
    return $t->module_conf(<<"EOF");
    postback_zone pb:$zone;
    postback_field status \$.data.purchase.status;
    postback_field transaction \$.data.purchase.transaction;
    postback_event \$postback_status;

    postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/h events=APPROVED;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /api/ {
            proxy_pass http://127.0.0.1:%%PORT_checkout%%;
            postback on;
        }
        location /status/ {
            postback_status;
        }
    }
EOF
}

sub status {
    my ($t, $query) = @_;
    my $r = $t->get('/status/' . ($query // ''));
    return $r->{status} == 200 ? decode_json($r->{body}) : undef;
}

sub hook_counters {
    my ($st) = @_;
    my ($cb) = grep { $_->{name} eq 'hook' } @{ $st->{callbacks} };
    return $cb;
}

my $t = PBTest->new;

# answers longer than the 256 bytes an attempt keeps of a response
$t->upstream(checkout => \&PBSample::checkout);
$t->receiver(hook => respond => sub { { status => 200, body => 'x' x 300 } });

$t->nginx_conf(conf($t, '1m'));
$t->start;

my $n = 30;
my %tx;
for my $i (1 .. $n) {
    my $r = $t->get("/api/c?product=1&status=APPROVED&transaction=T$i");
    $tx{"T$i"} = 1 if $r->{status} == 200;
}
is scalar keys %tx, $n, "$n checkouts answered";

my $got = $t->wait_received(hook => $n);
is scalar @$got, $n, 'every checkout delivered';

my %seen;
$seen{ decode_json($_->{body})->{fields}{transaction} }++ for @$got;
is_deeply \%seen, { map { $_ => 1 } keys %tx }, '... each exactly once';

# poll: the last attempt is recorded right after the receiver answered
my $st;
for (1 .. 50) {
    $st = status($t, "?limit=$n");
    last if hook_counters($st)->{delivered} == $n;
    select undef, undef, undef, 0.05;
}

# each status request is a new connection: either worker may answer
for my $try (1 .. 6) {
    my $s = status($t, "?limit=$n");
    my $cb = hook_counters($s);
    is_deeply [ @$cb{qw(events delivered failed pending attempts)} ],
        [ $n, $n, 0, 0, $n ], "counters shared by the workers (read $try)";
}

my $deliveries = $st->{deliveries};
is scalar @$deliveries, $n, 'history has every delivery';
is scalar(grep { $_->{state} eq 'delivered' } @$deliveries), $n,
    '... all delivered';

my $d = $deliveries->[0];
like $d->{id}, qr/^msg_[0-9a-f]{24}$/, 'delivery id';
is $d->{callback}, 'hook', 'callback name';
is $d->{event}, 'APPROVED', 'event';
is $d->{method}, 'POST', 'method';
like $d->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    'created_at is RFC 3339';
is scalar @{ $d->{attempts} }, 1, 'one attempt';
my $attempt = $d->{attempts}[0];
is $attempt->{status}, 200, 'attempt status';
is $attempt->{error}, '', 'no error';
is $attempt->{response}, 'x' x 256, 'first 256 bytes of the response kept';
ok $attempt->{duration_ms} >= 0, 'attempt duration';

my %ids = map { $_->{id} => 1 } @$deliveries;
is scalar keys %ids, $n, 'ids are unique';
my @newest_first = map { $_->{id} } @$deliveries;
is_deeply \@newest_first, [ sort { $b cmp $a } @newest_first ],
    'newest first';

is scalar @{ status($t, '?limit=5')->{deliveries} }, 5, 'limit=5';
is $t->get('/status/?limit=x')->{status}, 400, 'bad limit: 400';
is $t->post('/status/', '')->{status}, 405, 'POST: 405';

ok $st->{zone}{used} > 0 && $st->{zone}{used} <= $st->{zone}{size},
    'zone use reported';
is $st->{zone}{records}, $n, 'zone records';
is $st->{capture}{events}, $n, 'capture events';
is $st->{capture}{examined}, $n, 'capture examined';

# a reload keeps the zone: counters, history, and ids continue
$t->reload;
my $after = status($t, "?limit=100");
is hook_counters($after)->{delivered}, $n, 'counters survive a reload';
is scalar @{ $after->{deliveries} }, $n, 'history survives a reload';

$t->get('/api/c?product=1&status=APPROVED&transaction=after-reload');
$t->wait_received(hook => $n + 1);
for (1 .. 50) {
    $after = status($t, '?limit=1');
    last if hook_counters($after)->{delivered} == $n + 1;
    select undef, undef, undef, 0.05;
}
is hook_counters($after)->{delivered}, $n + 1,
    'a delivery after the reload counts on';
ok $after->{deliveries}[0]{id} gt $newest_first[0],
    'ids go on growing after a reload';

$t->stop;

# a small zone: finished records make room for new ones
my $small = PBTest->new;
$small->upstream(checkout => \&PBSample::checkout);
$small->receiver('hook');
$small->nginx_conf(conf($small, '32k'));
$small->start;

my $many = 150;
for my $i (1 .. $many) {
    $small->get("/api/c?product=1&status=APPROVED&transaction=S$i");
    # let each finish, so that there is always a finished record to evict
    $small->wait_received(hook => $i, 5);
}
is scalar @{ $small->received('hook') }, $many,
    'a full zone still takes every delivery';

my $ss;
for (1 .. 50) {
    $ss = status($small, '?limit=1000');
    last if hook_counters($ss)->{delivered} == $many;
    select undef, undef, undef, 0.05;
}
ok $ss->{zone}{evicted} > 0, "finished records evicted ($ss->{zone}{evicted})";
is hook_counters($ss)->{dropped}, 0, 'nothing dropped';
is $ss->{zone}{records} + $ss->{zone}{evicted}, $many,
    'records + evicted = deliveries';
is $ss->{deliveries}[0]{state}, 'delivered', 'newest record kept';

$small->stop;

done_testing;
