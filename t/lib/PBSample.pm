package PBSample;

# The sample checkout service used by `make demo` and the tests: answers
# /api/checkout/...?product=ID&status=STATUS[&email=..] with a JSON document
# shaped like the platforms' purchase notifications.

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

1;
