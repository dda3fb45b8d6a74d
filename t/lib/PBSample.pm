package PBSample;

# The sample checkout service used by `make demo` and the tests: answers
# /api/checkout/...?product=ID&status=STATUS[&email=..] with a JSON document
# shaped like the platforms' purchase notifications.  start_example() runs
# conf.d/postback.conf with it.

use strict;
use warnings;
use JSON::PP;

my $serial = 0;

sub checkout {
    my ($req) = @_;
    my $a = $req->{args} || {};
    my $status = $a->{status} // 'APPROVED';
    my $product = $a->{product} // 1234;

    $serial++;
    my $doc = {
        id    => "evt_$$" . "_$serial",
        event => "PURCHASE_$status",
        data  => {
            purchase => {
                status      => $status,
                transaction => $a->{transaction} // sprintf("HP%d%04d", $$, $serial),
                price       => { value => 97.5, currency => 'BRL' },
            },
            product   => { id => $product + 0, name => 'Course' },
            buyer     => { email => $a->{email} // 'ana@example.com',
                           name  => $a->{name} // 'Ana' },
            affiliate => { code => $a->{affiliate} // 'AFF9' },
        },
    };

    return {
        status  => 200,
        headers => [ 'Content-Type' => 'application/json; charset=utf-8' ],
        body    => JSON::PP->new->canonical->encode($doc),
    };
}

# Starts nginx with conf.d/postback.conf as it is, its ports moved to free
# ones, in front of the sample checkout, with its two receivers "members"
# and "tracker".
sub start_example {
    my ($t) = @_;

    $t->upstream(checkout => \&checkout);
    $t->receiver('members');
    $t->receiver('tracker');

    my $conf_d = $t->conf_d_text('postback.conf', {
        '127.0.0.1:8080' => '127.0.0.1:' . $t->port('front'),
        '127.0.0.1:8081' => '127.0.0.1:' . $t->port('checkout'),
        '127.0.0.1:8091' => '127.0.0.1:' . $t->port('members'),
        '127.0.0.1:8092' => '127.0.0.1:' . $t->port('tracker'),
    });
    die "conf.d/postback.conf has a port start_example does not move\n"
        if $conf_d =~ /127\.0\.0\.1:80[89]\d\b/;

    $t->nginx_conf($t->module_conf($conf_d));
    $t->start;
}

1;
