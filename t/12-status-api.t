# The status API: every route of the status location (JSON root and its
# filters, q= search, the page, one delivery, retry, test send,
# enable/disable), the answers to wrong methods, unknown names and unknown
# query arguments, mutations recorded (a manual retry shows in the
# attempts, each one is logged), a cross-site POST refused, each
# callback's engine and proxy, and secrets (bearer token, secret=,
# secret_header= values, URL user info, a proxy's password) in no answer
# and not in the error log.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Digest::SHA qw(sha256_base64);
use PBTest qw(url eventually);

my $TOKEN = 'bearer-tok-7Qx';
my $WHSEC = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $APIKEY = 'apikey-s3cr3t';
my $PASSWORD = 'pw-in-url-9Zk';
my $PROXY_PASSWORD = 'pw-of-proxy-3Jd';
my @SECRETS = ($TOKEN, 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', $APIKEY,
               $PASSWORD, $PROXY_PASSWORD);

my $t = PBTest->new;

$t->receiver('members');
# the tracker fails its first two requests, then accepts
$t->receiver(tracker => fail_first => 2);

$t->nginx_conf($t->checkout_conf(
    fields => [ status => '$.data.status', tx => '$.data.tx',
                product => '$.data.product.id' ],
    doc => '{"data":{"status":"$arg_status","tx":"$arg_tx",'
           . '"product":{"id":"$arg_product"}}}',
    callbacks => <<"EOF"));
            postback_callback members
                url=http://127.0.0.1:%%PORT_members%%/hook
                events=APPROVED,REFUNDED
                auth=bearer:$TOKEN secret=$WHSEC
                "header=X-Product: \$postback_product"
                "secret_header=X-Api-Key: \$arg_key";
            postback_callback tracker
                url=http://tracker:$PASSWORD\@127.0.0.1:%%PORT_tracker%%/pb
                events=APPROVED method=get param=tx=\$postback_tx
                attempts=2 retry=1s;
            postback_callback proxied
                url=http://127.0.0.1:%%PORT_members%%/proxied
                proxy=http://pb:$PROXY_PASSWORD\@127.0.0.1:9 events=NONE;
EOF
$t->start;

my $json = JSON::PP->new->canonical;
my @answers;    # every status answer, searched for secrets at the end

sub api {
    my ($method, $path, %opt) = @_;
    my $r = $t->request($method, "/status/$path", %opt);
    push @answers, $r->{raw};
    return $r;
}

sub status {
    my (%q) = @_;
    my $r = api(GET => url('', %q));
    die "status: $r->{status}\n" unless $r->{status} == 200;
    return $json->decode($r->{body});
}

sub delivery {
    my ($id) = @_;
    my $r = api(GET => "deliveries/$id");
    return $r->{status} == 200 ? $json->decode($r->{body}) : undef;
}

sub wait_state {
    my ($id, $state) = @_;
    my $d;
    eventually(sub { $d = delivery($id); $d && $d->{state} eq $state });
    return $d;
}

$t->get(url('/buy/a', status => 'APPROVED', tx => 'T1', product => 7,
            key => $APIKEY));
# both of its deliveries are recorded before the next event's
$t->wait_received(members => 1);
$t->wait_received(tracker => 1);
$t->get(url('/buy/b', status => 'REFUNDED', tx => 'T2', product => 7,
            key => $APIKEY));
$t->wait_received(members => 2);

my $s;
eventually(sub {
    $s = status();
    my %cb = map { $_->{name} => $_ } @{ $s->{callbacks} };
    $cb{members}{delivered} == 2 && $cb{tracker}{failed} == 1;
});

# ---------------------------------------------------------------- root

my %cb = map { $_->{name} => $_ } @{ $s->{callbacks} };
is_deeply [sort keys %$s],
    [qw(callbacks capture deliveries sample spool zone)],
    'root: zone, spool, capture, callbacks, sample, deliveries';
is $s->{spool}, undef, 'spool: null without spool=';
is $cb{members}{state}, 'enabled', 'members enabled';
is $cb{members}{disabled_reason}, undef, '... no disabled reason';
is_deeply $cb{members}{outcomes},
    { '2xx' => 2, '3xx' => 0, '4xx' => 0, '5xx' => 0, error => 0 },
    'members: attempts by outcome';
is $cb{tracker}{outcomes}{'5xx'}, 2, 'tracker: two 5xx attempts';
is $cb{tracker}{url}, 'http://127.0.0.1:' . $t->port('tracker'),
    'url shown without its user info';
is_deeply [ @{ $cb{tracker} }{qw(engine proxy)} ], [ 'nginx', undef ],
    'tracker: engine nginx, no proxy';
is_deeply [ @{ $cb{proxied} }{qw(engine proxy)} ],
    [ 'curl', 'http://127.0.0.1:9' ],
    'proxied: engine curl, the proxy shown without its user info';
is scalar @{ $s->{deliveries} }, 3, 'three deliveries';
is $s->{deliveries}[0]{event}, 'REFUNDED', 'newest first';
ok !$s->{deliveries}[0]{test}, 'not a test';

# ---------------------------------------------------------------- filters

my @got = map { $_->{callback} } @{ status(callback => 'tracker')->{deliveries} };
is_deeply \@got, ['tracker'], 'filter by callback';
@got = map { $_->{callback} } @{ status(state => 'failed')->{deliveries} };
is_deeply \@got, ['tracker'], 'filter by state';
@got = map { $_->{event} } @{ status(event => 'REFUNDED')->{deliveries} };
is_deeply \@got, ['REFUNDED'], 'filter by event';
is scalar @{ status(limit => 1)->{deliveries} }, 1, 'limit';
is scalar @{ status(callback => 'members', event => 'APPROVED',
                    state => 'delivered')->{deliveries} }, 1,
    'filters combine';
is scalar @{ status(callback => 'nobody')->{deliveries} }, 0,
    'an unknown callback selects none';
is api(GET => '?state=lost')->{status}, 400, 'an unknown state: 400';
is api(GET => '?limit=5000')->{status}, 400, 'limit over 1000: 400';
is api(GET => '?format=xml')->{status}, 400, 'an unknown format: 400';

# ---------------------------------------------------------------- search

@got = sort map { "$_->{callback} $_->{event}" }
       @{ status(q => 't1')->{deliveries} };
is_deeply \@got, ['members APPROVED', 'tracker APPROVED'],
    'q: a field value, whatever the case';
@got = map { $_->{event} } @{ status(q => 'efund')->{deliveries} };
is_deeply \@got, ['REFUNDED'], 'q: part of the event';
my $some = $s->{deliveries}[1]{id};
@got = map { $_->{id} } @{ status(q => substr($some, -14))->{deliveries} };
is_deeply \@got, [$some], 'q: part of an id';
is scalar @{ status(q => 'product')->{deliveries} }, 0,
    'q: not the field names';
is scalar @{ status(q => 'T1', callback => 'tracker')->{deliveries} }, 1,
    'q combines with the filters';
is scalar @{ status(q => 'T9')->{deliveries} }, 0, 'q: none';

# ---------------------------------------------------------------- arguments

my $r = api(GET => '?colour=red&limit=1');
is $r->{status}, 400, 'an unknown query argument: 400';
my $e = $json->decode($r->{body});
is $e->{error}, 'unknown query argument "colour"', '... naming it';
is_deeply $e->{known}, [qw(format callback state event q limit)],
    '... and listing those the root takes';
is api(GET => '?format=html&colour=red')->{status}, 400, '... for the page too';
is api(GET => '?format=prometheus&q=x&LIMIT=0')->{status}, 200,
    'known ones, without regard to case: 200';
is api(GET => "deliveries/$some?verbose=1")->{status}, 400,
    'deliveries/ID takes none';
is api(POST => "deliveries/$some/retry?now=1")->{status}, 400,
    '... nor retry';
is api(POST => 'callbacks/members/disable?for=1h')->{status}, 400,
    '... nor disable';
$r = api(POST => 'events?evnt=A', body => '{"status":"APPROVED"}');
is $r->{status}, 400, 'events takes event= alone';
is_deeply $json->decode($r->{body})->{known}, ['event'], '... saying so';

# ---------------------------------------------------------------- one delivery

my ($failed) = @{ status(state => 'failed')->{deliveries} };
my ($approved) = @{ status(callback => 'members', event => 'APPROVED')
                    ->{deliveries} };

my $d = delivery($approved->{id});
is $d->{id}, $approved->{id}, 'delivery detail';
is $d->{request}{method}, 'POST', '... its method';
is $d->{request}{url}, 'http://127.0.0.1:' . $t->port('members') . '/hook',
    '... its url';
my %h = map { /^([^:]+): (.*)$/ ? (lc $1 => $2) : () }
        @{ $d->{request}{headers} };
is $h{'webhook-id'}, $approved->{id}, '... webhook-id';
is $h{'x-product'}, '7', '... a header as rendered';
is $h{'x-api-key'}, '[secret]', '... a secret_header= value hidden';
is $h{authorization}, '[secret]', '... the credentials hidden';
is $h{'webhook-signature'}, "[each attempt's]", '... the signature made at each attempt';
is $json->decode($d->{request}{body})->{fields}{tx}, 'T1', '... its body';
is scalar @{ $d->{attempts} }, 1, '... one attempt';
is $d->{attempts}[0]{status}, 200, '... answered 200';
ok !$d->{attempts}[0]{manual}, '... not a manual one';

my $got = $t->received('members');
is $got->[0]{headers}{'x-api-key'}, $APIKEY, 'the receiver got the secret header';
is $got->[0]{headers}{authorization}, "Bearer $TOKEN", '... and the credentials';

is api(GET => 'deliveries/msg_000000000000000000000000')->{status}, 404,
    'an unknown id: 404';
is api(GET => 'deliveries/nonsense')->{status}, 404, 'a malformed id: 404';
is api(GET => 'nothing/here')->{status}, 404, 'an unknown route: 404';
$r = api(POST => '');
is $r->{status}, 405, 'POST to the root: 405';
is $r->{headers}{allow}, 'GET, HEAD', '... saying what is allowed';

# ---------------------------------------------------------------- retry

$r = api(GET => "deliveries/$failed->{id}/retry");
is $r->{status}, 405, 'GET retry: 405';
is $r->{headers}{allow}, 'POST', '... POST only';
is api(POST => 'deliveries/msg_000000000000000000000000/retry')->{status},
    404, 'retry of an unknown id: 404';
$r = api(POST => "deliveries/$failed->{id}/retry");
is $r->{status}, 202, 'retry of a failed delivery: 202';
is $json->decode($r->{body})->{id}, $failed->{id}, '... naming it';

$d = wait_state($failed->{id}, 'delivered');
is $d->{state}, 'delivered', 'the manual retry delivered it';
is scalar @{ $d->{attempts} }, 3, '... a third attempt';
ok $d->{attempts}[2]{manual}, '... marked manual';
ok !$d->{attempts}[1]{manual}, '... the scheduled ones are not';
is $t->received('tracker')->[2]{args}{tx}, 'T1', 'the tracker got it again';

# a delivered one is sent once more, with the same webhook-id
is api(POST => "deliveries/$approved->{id}/retry")->{status}, 202,
    'retry of a delivered one: 202';
$got = $t->wait_received(members => 3);
is $got->[2]{headers}{'webhook-id'}, $approved->{id}, '... same webhook-id';
$d = wait_state($approved->{id}, 'delivered');
ok eventually(sub { @{ delivery($approved->{id})->{attempts} } == 2 }),
    '... recorded as a second attempt';

%cb = map { $_->{name} => $_ } @{ status()->{callbacks} };
is $cb{tracker}{manual_retries}, 1, 'tracker: one manual retry counted';
is $cb{members}{manual_retries}, 1, 'members: one';

# ---------------------------------------------------------------- test send

is api(GET => 'callbacks/members/test')->{status}, 405, 'GET test: 405';
is api(POST => 'callbacks/nobody/test')->{status}, 404,
    'test of an unknown callback: 404';
is api(POST => url('callbacks/members/test', key => 'k1'))->{status}, 400,
    'test send with an argument it does not take: 400';
$r = api(POST => url('callbacks/members/test', event => 'CHARGEBACK',
                     'field.product' => 'P-42'));
is $r->{status}, 202, 'test send: 202';
my $test = $json->decode($r->{body});
is $test->{event}, 'CHARGEBACK', '... the event asked for, outside events=';
$got = $t->wait_received(members => 4);
my $body = $json->decode($got->[3]{body});
is $body->{event}, 'CHARGEBACK', 'the receiver got the test event';
is $body->{fields}{product}, 'P-42', '... a field from the query';
is $body->{fields}{tx}, 'test', '... the others "test"';
is $body->{data}{data}{product}{id}, 'P-42',
    '... in a sample document built from the paths';
is $body->{data}{data}{status}, 'CHARGEBACK',
    '... whose status is the event';
is $got->[3]{headers}{'webhook-id'}, $test->{id}, '... under its id';
ok wait_state($test->{id}, 'delivered')->{test}, 'the delivery is marked test';

is api(POST => url('callbacks/members/test', event => "\xff"))->{status}, 400,
    'a test event that is not UTF-8: 400';

$r = api(POST => 'callbacks/tracker/test');
is $r->{status}, 202, 'test send with no event';
is $json->decode($r->{body})->{event}, 'APPROVED',
    "... the callback's first event";

# ---------------------------------------------------------------- switch

is api(GET => 'callbacks/members/disable')->{status}, 405, 'GET disable: 405';
is api(POST => 'callbacks/nobody/disable')->{status}, 404,
    'disable of an unknown callback: 404';
is api(POST => 'callbacks/members/disable')->{status}, 200, 'disable: 200';
%cb = map { $_->{name} => $_ } @{ status()->{callbacks} };
is $cb{members}{state}, 'disabled', 'members disabled';
is $cb{members}{disabled_reason}, 'api', '... through the API';
ok $cb{members}{state_changed_at}, '... with the time';

$t->get(url('/buy/c', status => 'APPROVED', tx => 'T3', product => 7));
my ($paused);
eventually(sub {
    ($paused) = @{ status(state => 'paused')->{deliveries} };
    $paused;
});
is $paused && $paused->{callback}, 'members', 'an event while disabled is paused';
is api(POST => "deliveries/$paused->{id}/retry")->{status}, 202,
    'retry of a paused delivery: 202, it goes while the callback is disabled';
ok wait_state($paused->{id}, 'delivered'), '... and was delivered';
%cb = map { $_->{name} => $_ } @{ status()->{callbacks} };
is $cb{members}{state}, 'disabled', '... the callback stays disabled';

is api(POST => 'callbacks/members/enable')->{status}, 200, 'enable: 200';
%cb = map { $_->{name} => $_ } @{ status()->{callbacks} };
is $cb{members}{state}, 'enabled', 'members enabled again';
is $cb{members}{paused}, 0, '... nothing paused';

my $log = $t->error_log;
like $log, qr/delivery $failed->{id} to be sent again/, 'the retry is logged';
like $log, qr/test delivery $test->{id} of callback "members"/,
    'the test send is logged';
like $log, qr/callback "members" disabled through the status API/,
    'disable is logged';
like $log, qr/callback "members" enabled through the status API/,
    'enable is logged';

# ---------------------------------------------------------------- origin

is api(POST => 'callbacks/members/enable',
       headers => [Origin => 'http://evil.example'])->{status}, 403,
    'a POST from a page of another site: 403';
is api(POST => 'callbacks/members/enable',
       headers => [Origin => 'http://127.0.0.1:1'])->{status}, 403,
    '... from another port of the same host: 403';
is api(POST => 'callbacks/members/enable',
       headers => [Origin => 'http://127.0.0.1:' . $t->port('front')])
       ->{status}, 200, 'from the same site: 200';

# ---------------------------------------------------------------- page

$r = api(GET => '', headers => [Accept => 'text/html,*/*']);
is $r->{status}, 200, 'a browser gets the page';
like $r->{headers}{'content-type'}, qr{^text/html}, '... as HTML';
like $r->{body}, qr/^<!DOCTYPE html>/, '... a document';
unlike $r->{body}, qr/<(?:script|link|img)[^>]+(?:src|href)=/i,
    '... with no external asset';
like $r->{headers}{'content-security-policy'},
    qr/default-src 'none'; script-src 'sha256-[A-Za-z0-9+\/]{43}='/,
    '... under a strict content security policy';
my ($script) = $r->{body} =~ m{<script>(.*)</script>}s;
my ($hash) = $r->{headers}{'content-security-policy'} =~ /'sha256-([^']+)'/;
is $hash, sha256_base64($script) . '=', "... which allows the page's script";
like api(GET => '?format=html')->{body}, qr/^<!DOCTYPE html>/,
    '?format=html as well';
like api(GET => '')->{headers}{'content-type'}, qr{^application/json},
    'JSON by default';

# ---------------------------------------------------------------- secrets

# every delivery's detail, the metrics and the page, then a grep
api(GET => "deliveries/$_->{id}") for @{ status(limit => 100)->{deliveries} };
api(GET => '?format=prometheus');
my $all = join "\n", @answers, $t->error_log;
for my $secret (@SECRETS) {
    unlike $all, qr/\Q$secret\E/, "'$secret' in no answer nor log line";
}

$t->stop;
done_testing;
