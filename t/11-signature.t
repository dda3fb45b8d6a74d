# secret=: Standard Webhooks signatures, verified here independently
# (Digest::SHA): every attempt of a delivery is signed, with the same
# webhook-id and a fresh webhook-timestamp; a GET is signed over an empty
# body; the secret shows nowhere (status page, error log).  The spec's
# published example is checked in t/unit/test_sign.c.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use Digest::SHA qw(hmac_sha256_base64);
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(time);
use PBTest qw(eventually);

my $SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
my $KEY = decode_base64(substr $SECRET, 6);

# where the receivers are: an address (nginx's connections send) or, from
# the -curl.t twin of this file, a name (libcurl sends)
my $HOST = $ENV{PB_RECEIVER_HOST} // '127.0.0.1';
my $ENGINE = $HOST eq '127.0.0.1' ? 'nginx' : 'curl';

my $t = PBTest->new;

$t->receiver(signed => respond => sub {
    my ($req, $n) = @_;
    return { status => $n == 1 ? 500 : 200, body => "answer $n" };
});
$t->receiver('get');

$t->nginx_conf($t->checkout_conf(callbacks => <<"EOF"));
            postback_callback signed url=http://$HOST:%%PORT_signed%%/
                secret=$SECRET retry=2s;
            postback_callback get url=http://$HOST:%%PORT_get%%/
                method=get param=tx=\$postback_tx secret=$SECRET;
EOF
$t->start;

is_deeply $t->engines('/status/'), [ $ENGINE ], "every callback sent by $ENGINE";

# what a receiver using the Standard Webhooks libraries checks
sub verifies {
    my ($req) = @_;
    my $h = $req->{headers};
    my $mac = hmac_sha256_base64(
        "$h->{'webhook-id'}.$h->{'webhook-timestamp'}.$req->{body}", $KEY);
    $mac .= '=' while length($mac) % 4;
    return ($h->{'webhook-signature'} // '') eq "v1,$mac";
}

my $start = time;
$t->get('/buy/x?status=APPROVED&tx=S1');

my $got = $t->wait_received(signed => 2, 10);
is scalar @$got, 2, 'two attempts (a 500, then a 200)';
ok verifies($got->[0]), 'first attempt: signature verifies';
ok verifies($got->[1]), 'retry: signature verifies';
is $got->[1]{headers}{'webhook-id'}, $got->[0]{headers}{'webhook-id'},
    'same webhook-id';
ok $got->[1]{headers}{'webhook-timestamp'}
   > $got->[0]{headers}{'webhook-timestamp'}, 'a fresh timestamp';
ok abs($got->[0]{headers}{'webhook-timestamp'} - $start) < 5,
    'the timestamp is now, in seconds';
like $got->[0]{headers}{'webhook-signature'}, qr{^v1,[A-Za-z0-9+/]{43}=$},
    'v1, then base64';

my $g = $t->wait_received(get => 1);
is $g->[0]{args}{tx}, 'S1', 'GET delivered';
is $g->[0]{body}, '', '... with no body';
ok verifies($g->[0]), '... signed over the empty body';

# a body changed on the way no longer verifies
my %forged = (%{ $got->[1] }, body => $got->[1]{body} . ' ');
ok !verifies(\%forged), 'a changed body does not verify';

my $status = $t->get('/status/?limit=10')->{body};
unlike $status, qr/MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/, 'no secret on the status page';
unlike $t->error_log, qr/MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/, 'none in the error log';

$t->stop;
done_testing;
