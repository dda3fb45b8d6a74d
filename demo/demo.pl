#!/usr/bin/perl
# `make demo`: nginx with the module in front of the sample checkout, with
# conf.d/postback.conf as it is (only its ports moved to free ones), a
# members area and an affiliate tracker as receivers.  Sends a handful of
# checkouts (one of them twice: sent once) and a payment provider's
# notification, prints what each receiver got and the status page, and
# stops everything it started.

use strict;
use warnings;
use JSON::PP;
use Test::More ();
use PBTest;
use PBSample;

# the harness reports through Test::More: keep its TAP out of the demo
my $tb = Test::More->builder;
$tb->output(\my $tap);
$tb->failure_output(\my $tap_failures);
$tb->no_ending(1);

# interrupted (Ctrl-C, a closed pipe): exit through END, which stops nginx
# and the servers
$SIG{$_} = sub { exit 1 } for qw(INT TERM PIPE);

my $t = PBTest->new;
my $json = JSON::PP->new->canonical->pretty;

PBSample::start_example($t);

print "nginx with ngx_http_postback_module in front of a sample checkout\n",
      "config: conf.d/postback.conf\n\n",
      "each request: status and the client's time through nginx, from\n",
      "connect to the last byte (callbacks are sent after, not in it)\n\n";

my $form = [ 'Content-Type' => 'application/x-www-form-urlencoded' ];

# what the shop sees: checkouts answered by the checkout service, then a
# payment provider's notification, POSTed as a form
my @requests = (
    [ 'checkout: product 1234 approved, from an affiliate click',
      GET => '/api/checkout/buy?product=1234&status=APPROVED&click_id=clk-777'
             . '&transaction=HP1042' ],
    [ 'thank-you page reloaded: HP1042 approved again (sends nothing)',
      GET => '/api/checkout/buy?product=1234&status=APPROVED&click_id=clk-777'
             . '&transaction=HP1042' ],
    [ 'checkout: product 1234 refunded',
      GET => '/api/checkout/refund?product=1234&status=REFUNDED' ],
    [ 'checkout: product 999 approved (not a members-area product)',
      GET => '/api/checkout/buy?product=999&status=APPROVED&click_id=clk-888' ],
    [ 'checkout: product 1234, billet printed (no callback wants it)',
      GET => '/api/checkout/buy?product=1234&status=BILLET_PRINTED' ],
    [ 'provider notification (form): HP1042 chargeback',
      POST => '/webhooks/provider/notify',
      'data[purchase][status]=CHARGEBACK&data[purchase][transaction]=HP1042'
      . '&data[product][id]=1234&data[buyer][email]=ana%40example.com' ],
);

for my $q (@requests) {
    my ($what, $method, $path, $body) = @$q;
    my $r = $t->request($method, $path,
                        defined $body ? (body => $body, headers => $form) : ());
    printf "%-66s -> %d in %.1f ms\n",
           $what, $r->{status}, $r->{elapsed} * 1000;
}

my $members = $t->wait_received(members => 3, 5);
my $tracker = $t->wait_received(tracker => 2, 5);

print "\n== members area (POST JSON) received ", scalar @$members,
      " callbacks\n";
for my $req (@$members) {
    print "\n$req->{method} $req->{uri}\n";
    for my $h (qw(webhook-id webhook-timestamp webhook-signature
                  content-type authorization x-api-key x-members-product))
    {
        my $v = $req->{headers}{$h} // next;
        # credentials are secrets, also in a demo's output
        $v = '[secret]' if $h eq 'authorization' || $h eq 'x-api-key';
        print "  $h: $v\n";
    }
    print $json->encode(JSON::PP->new->decode($req->{body}));
}

print "\n== affiliate tracker (GET postback) received ", scalar @$tracker,
      " callbacks\n";
print "$_->{method} $_->{uri}\n" for @$tracker;

my $capture = decode_json($t->get('/postback/?limit=0')->{body})->{capture};
printf "\n== capture: %d events sent on, %d repeated status not sent "
       . "(duplicate)\n", $capture->{events}, $capture->{skipped}{duplicate};

print "\n== status: GET /postback/?limit=2\n";
print $t->get('/postback/?limit=2')->{body};

# a keyed delivery's webhook-id is derived; the ledger lists both ids
my $sent = $members->[0]{headers}{'webhook-id'};
my ($listed) = grep { $_->{webhook_id} eq $sent }
               @{ decode_json($t->get('/postback/?limit=50')->{body})
                  ->{deliveries} };
my $id = $listed->{id};
print "\n== one delivery, as sent: GET /postback/deliveries/$id\n";
print $t->get("/postback/deliveries/$id")->{body};

print "\nthe same location gives a browser the page for people, and\n",
      "/postback/?format=prometheus the metrics\n";

$t->stop;
print "\nerror log: ", ($tb->is_passing ? 'clean' : "NOT clean:\n$tap_failures"),
      "\n";
exit($tb->is_passing ? 0 : 1);
