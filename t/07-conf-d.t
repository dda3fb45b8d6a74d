# conf.d/postback.conf, the example the README and `make demo` use, loaded
# as it is (only its ports moved to free ones): the members area gets the
# product-1234 purchases as signed POST JSON with credentials, the tracker
# gets the
# approved ones as GET postbacks with the click id.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use PBTest;
use PBSample;

my $t = PBTest->new;

PBSample::start_example($t);

my %sent = (
    A => '/api/checkout/buy?product=1234&status=APPROVED&click_id=clk-1&transaction=A',
    R => '/api/checkout/buy?product=1234&status=REFUNDED&transaction=R',
    B => '/api/checkout/buy?product=1234&status=BILLET_PRINTED&transaction=B',
    O => '/api/checkout/buy?product=999&status=APPROVED&click_id=clk-2&transaction=O',
    C => '/api/checkout/buy?product=1234&status=CHARGEBACK&transaction=C',
);
is $t->get($sent{$_})->{status}, 200, "checkout $_ answered" for sort keys %sent;

my $members = $t->wait_received(members => 3);
my $tracker = $t->wait_received(tracker => 2);
$t->wait_received(members => 4, 0.5);    # a fourth would be a bug

my %m = map { my $b = decode_json($_->{body}); ($b->{fields}{transaction} => [$_, $b]) }
        @$members;
is_deeply [ sort keys %m ], [qw(A C R)],
    'members: approved, refunded, chargeback of product 1234 only';

for my $tx (sort keys %m) {
    my ($req, $body) = @{ $m{$tx} };
    is $req->{method}, 'POST', "members $tx: POST";
    is $req->{path}, '/hooks/sale', "members $tx: path";
    is $req->{headers}{authorization}, 'Bearer members-area-token',
        "members $tx: bearer token";
    is $req->{headers}{'x-members-product'}, '1234', "members $tx: header";
    is $req->{headers}{'x-api-key'}, 'members-api-key',
        "members $tx: secret header";
    like $req->{headers}{'webhook-signature'}, qr/^v1,/, "members $tx: signed";
    is $req->{headers}{'webhook-id'}, $body->{id}, "members $tx: webhook-id";
    is $body->{callback}, 'members', "members $tx: callback";
    is $body->{data}{data}{purchase}{transaction}, $tx,
        "members $tx: the checkout document";
}

my %tr = map { ($_->{args}{transaction} => $_) } @$tracker;
is_deeply [ sort keys %tr ], [qw(A O)], 'tracker: the approved ones';
is $tr{A}{args}{clickid}, 'clk-1', 'tracker: click id from the request';
is $tr{O}{args}{clickid}, 'clk-2', 'tracker: click id of the other';
is $tr{A}{args}{affiliate}, 'AFF9', 'tracker: affiliate from the document';
is $tr{A}{method}, 'GET', 'tracker: GET';

my $st = decode_json($t->get('/postback/')->{body});
my %cb = map { ($_->{name} => $_) } @{ $st->{callbacks} };
is $st->{capture}{skipped}{no_match}, 1, 'billet printed matched nothing';
is $cb{members}{events}, 3, 'members: 3 events';
is $cb{tracker}{events}, 2, 'tracker: 2 events';

$t->stop;
done_testing;
