# Realistic test sends: postback_sample FILE is the document a test send
# (POST <status>/callbacks/NAME/test) renders.  Its fields are extracted
# from it as from an upstream's answer; the event chosen is set at the
# path of the field the event comes from (postback_event $postback_status)
# so that the document agrees with it; field.NAME=VALUE sets a field's
# value at its path (a number stays a number, true/false a boolean, a
# path the sample lacks is made) or, for a field that is not a JSONPath,
# replaces its value.  An unknown field name, an event that disagrees
# with its field, a path the sample's shape cannot take, an unknown query
# argument: 400 naming them.  A location's postback_sample replaces the
# http one; the status JSON shows the sample's fields for the page.
# nginx -t refuses a missing file and invalid JSON with clear messages,
# and reads a relative name from the configuration's directory.  q=
# finds a delivery by its key as well.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use PBTest qw(url eventually);

my $json = JSON::PP->new->canonical;

my $SAMPLE = {
    id     => 'evt_sample',
    hottok => 'sample-token',
    data   => {
        purchase => { status => 'COMPLETE', transaction => 'HP0000000001',
                      price => { value => 97.5, currency => 'BRL' } },
        product  => { id => 1234, name => 'Course' },
        buyer    => { email => 'ana@example.com', name => 'Ana' },
        paid     => JSON::PP::true,
    },
};

my $FIELDS = <<'EOF';
    postback_field status $.data.purchase.status;
    postback_field transaction $.data.purchase.transaction;
    postback_field product $.data.product.id;
    postback_field email $.data.buyer.email;
    postback_field paid $.data.paid;
    postback_field coupon $.data.purchase.coupon;
    postback_field click $arg_click_id;
    postback_event $postback_status;
EOF

# ---------------------------------------------------------------- nginx -t

{
    my $c = PBTest->new;
    $c->allow_log(qr/\[emerg\]/);
    $c->write_file('bad.json', '{"data": {"status": "A",}}');
    $c->write_file('samples/good.json', '{"data": {}}');

    my $conf = sub {
        my ($file) = @_;
        return $c->module_conf("    postback_zone pb:1m;\n$FIELDS"
                               . "    postback_sample $file;\n");
    };

    $c->nginx_conf($conf->('samples/good.json'));
    my ($rc, $out) = $c->test_conf;
    is $rc, 0, 'nginx -t: a sample named relative to the configuration'
        or diag $out;

    $c->nginx_conf($conf->('missing.json'));
    ($rc, $out) = $c->test_conf;
    isnt $rc, 0, 'nginx -t refuses a missing sample';
    like $out, qr/cannot read the sample document: unable to open \S*missing\.json: No such file/,
        '... saying it cannot be read';

    $c->nginx_conf($conf->('bad.json'));
    ($rc, $out) = $c->test_conf;
    isnt $rc, 0, 'nginx -t refuses a sample that is not JSON';
    like $out, qr/sample document "\S*bad\.json" is not valid JSON: .* \(line 1, column \d+\)/,
        '... saying where';

    $c->nginx_conf($c->module_conf("    postback_sample samples/good.json;\n"
                                   . "    postback_sample samples/good.json;\n"));
    ($rc, $out) = $c->test_conf;
    like $out, qr/"postback_sample" directive is duplicate/, '... and a duplicate';
    $c->stop;
}

# ---------------------------------------------------------------- test sends

my $t = PBTest->new;
$t->receiver('members');
$t->receiver('tracker');

$t->write_file('samples/purchase.json', $json->encode($SAMPLE));
$t->write_file('samples/refund.json',
               $json->encode({ refund => 1, data => { purchase => {
                   status => 'REFUND_REQUESTED', transaction => 'HP-B' } } }));
# a shape the paths cannot go through: purchase is a string
$t->write_file('samples/flat.json', '{"data": {"purchase": "flat"}}');

$t->nginx_conf($t->module_conf(<<"EOF"));
    postback_zone pb:1m;
$FIELDS
    postback_key k-\$postback_transaction;
    postback_sample samples/purchase.json;

    server {
        listen 127.0.0.1:%%PORT_front%%;

        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
            postback_callback members
                url=http://127.0.0.1:%%PORT_members%%/hook
                events=APPROVED,REFUNDED;
            postback_callback tracker
                url=http://127.0.0.1:%%PORT_tracker%%/pb method=get
                param=tx=\$postback_transaction param=click=\$postback_click
                param=status=\$postback_status
                events=*;
        }
        location /doc/ {
            default_type application/json;
            return 200 '{"data":{"purchase":{"status":"\$arg_status","transaction":"\$arg_tx"}}}';
        }
        location /status/ {
            postback_status;
        }
        location /status-b/ {
            postback_status;
            postback_sample samples/refund.json;
        }
        location /status-c/ {
            postback_status;
            postback_sample samples/flat.json;
        }
    }
EOF
$t->start;

my $n = { members => 0, tracker => 0 };

# POST <status>test?...; the answer, and with 202 what the receiver got
# (its record, and its body decoded when JSON)
sub test_send {
    my ($cb, $query, $status) = @_;
    my $r = $t->post(($status // '/status/') . "callbacks/$cb/test$query", '');
    my $answer = eval { $json->decode($r->{body}) } // {};
    return ($r, $answer) unless $r->{status} == 202;
    my $got = $t->wait_received($cb => ++$n->{$cb});
    my $rec = $got->[ $n->{$cb} - 1 ];
    my $body = eval { $json->decode($rec->{body}) };
    return ($r, $answer, $rec, $body);
}

my ($r, $a, $rec, $body) = test_send(members => '');
is $r->{status}, 202, 'test send from the sample: 202';
is $a->{event}, 'APPROVED', "... the callback's first event";
is $body->{event}, 'APPROVED', 'the receiver got the event';
my %want = %$SAMPLE;
$want{data} = { %{ $SAMPLE->{data} },
                purchase => { %{ $SAMPLE->{data}{purchase} },
                              status => 'APPROVED' } };
is_deeply $body->{data}, $json->decode($json->encode(\%want)),
    '... the sample document, its status the event chosen';
is_deeply $body->{fields},
    { status => 'APPROVED', transaction => 'HP0000000001', product => '1234',
      email => 'ana@example.com', paid => 'true', coupon => '', click => '' },
    '... the fields extracted from it';

($r, $a, $rec, $body) = test_send(members =>
    '?event=REFUNDED&field.transaction=HP123&field.product=99'
    . '&field.email=bia%40example.com&field.paid=false&field.coupon=SAVE10'
    . '&field.click=C-9');
is $r->{status}, 202, 'test send with an event and field values: 202';
is $body->{event}, 'REFUNDED', '... the event chosen';
my $p = $body->{data}{data};
is $p->{purchase}{status}, 'REFUNDED', '... set in the document';
is $p->{purchase}{transaction}, 'HP123', '... a value given, in the document';
is $p->{product}{id}, 99, '... a number where the sample has one';
ok !ref $p->{product}{id} && $json->encode($p->{product}) =~ /"id":99\b/,
    '... written as a number';
is $p->{buyer}{email}, 'bia@example.com', '... unescaped';
ok JSON::PP::is_bool($p->{paid}) && !$p->{paid}, '... a boolean stays one';
is $p->{purchase}{coupon}, 'SAVE10', '... a path the sample lacks is made';
is $p->{purchase}{price}{value}, 97.5, '... the rest as the sample has it';
is $body->{data}{hottok}, 'sample-token', '... all of it';
is_deeply $body->{fields},
    { status => 'REFUNDED', transaction => 'HP123', product => '99',
      email => 'bia@example.com', paid => 'false', coupon => 'SAVE10',
      click => 'C-9' },
    '... the fields, the complex value one given too';

($r, $a, $rec, $body) = test_send(members => '?field.product=P-42');
is $body->{data}{data}{product}{id}, 'P-42',
    'a value that is no number where the sample has one: a string';

($r, $a, $rec) = test_send(tracker => '?field.click=C-1&field.transaction=T-7');
is $a->{event}, 'COMPLETE', 'events=*: the event the sample has';
is_deeply $rec->{args}, { tx => 'T-7', click => 'C-1', status => 'COMPLETE' },
    '... the GET receiver got the values';

($r, $a, $rec, $body) = test_send(members => '?field.status=CHARGEBACK');
is $a->{event}, 'CHARGEBACK', 'the event field given alone: the event';
is $body->{data}{data}{purchase}{status}, 'CHARGEBACK', '... in the document';

($r, $a) = test_send(members => '?event=REFUNDED&field.status=REFUNDED');
is $r->{status}, 202, 'event and its field agreeing: 202';

($r, $a) = test_send(members => '?event=REFUNDED&field.status=APPROVED');
is $r->{status}, 400, 'event and its field differing: 400';
like $a->{error}, qr/differ/, '... saying so';

($r, $a) = test_send(members => '?field.nope=1&field.transaction=X&field.bad=2');
is $r->{status}, 400, 'unknown field names: 400';
is_deeply $a->{unknown}, ['nope', 'bad'], '... naming them';

($r, $a) = test_send(members => '?evnt=APPROVED');
is $r->{status}, 400, 'an unknown argument: 400';
is $a->{error}, 'unknown query argument "evnt"', '... naming it';
is_deeply $a->{known}, ['event', 'field.NAME'], '... and those the route takes';

# ---------------------------------------------------------------- locations

($r, $a, $rec) = test_send(tracker => '', '/status-b/');
is $r->{status}, 202, "a location's own sample: 202";
is $a->{event}, 'REFUND_REQUESTED', '... its event';
is $rec->{args}{tx}, 'HP-B', '... its values';

($r, $a) = test_send(tracker => '?event=X', '/status-c/');
is $r->{status}, 400, 'a path the sample cannot take: 400';
is $a->{field}, 'status', '... naming the field';

is $n->{members} + $n->{tracker}, scalar(@{ $t->received('members') })
    + scalar(@{ $t->received('tracker') }), 'nothing sent for a 400';

# ---------------------------------------------------------------- status

my $s = $json->decode($t->get('/status/?limit=100')->{body});
like $s->{sample}{file}, qr{/samples/purchase\.json$}, 'status: the sample file';
is $s->{sample}{event_field}, 'status', '... the field the event comes from';
is_deeply $s->{sample}{fields},
    [ { name => 'status', value => 'COMPLETE' },
      { name => 'transaction', value => 'HP0000000001' },
      { name => 'product', value => '1234' },
      { name => 'email', value => 'ana@example.com' },
      { name => 'paid', value => 'true' },
      { name => 'coupon', value => '' },
      { name => 'click', value => undef } ],
    '... the values of its fields, null for one not from the document';
my %cb = map { $_->{name} => $_ } @{ $s->{callbacks} };
is_deeply $cb{members}{event_names}, ['APPROVED', 'REFUNDED'],
    "... a callback's events=";
is $cb{tracker}{event_names}, undef, '... null for events=*';
ok !grep({ !$_->{test} } @{ $s->{deliveries} }), 'the deliveries are tests';

$s = $json->decode($t->get('/status-b/?limit=0')->{body});
is $s->{sample}{fields}[0]{value}, 'REFUND_REQUESTED',
    "another location: its sample's";

# ---------------------------------------------------------------- q= on keys

$t->get(url('/buy/x', status => 'APPROVED', tx => 'hp777'));
my $found;
ok eventually(sub {
    $found = $json->decode($t->get(url('/status/', q => 'K-HP7'))->{body})
             ->{deliveries};
    @$found == 2;
}), 'q= finds the deliveries by their key, whatever the case';
is_deeply [sort map { $_->{key} } @$found], ['k-hp777', 'k-hp777'],
    '... both of its deliveries';

$t->stop;
done_testing;
