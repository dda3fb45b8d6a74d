# `make demo` runs demo/demo.pl: it must work, show what the receivers got
# and the status, and leave out every secret of conf.d/postback.conf (the
# bearer token, the secret_header= value, the signing secret), which the
# receivers do get (t/07).

use strict;
use warnings;
use Test::More;
use PBTest;

my $repo = PBTest->repo;
my $out = `$^X -I '$repo/t/lib' '$repo/demo/demo.pl' 2>&1`;
is $?, 0, 'the demo runs' or diag $out;

# the figures themselves are not asserted: timings vary with the machine
my @timed = $out =~ /^\S.*\S +-> (\d{3}) in \d+\.\d ms$/mg;
is_deeply \@timed, [ (200) x 6 ],
    "each request's line: its status and the client's time through nginx";

like $out, qr/== members area \(POST JSON\) received 3 callbacks/,
    'the members area got its callbacks';
like $out, qr/== affiliate tracker \(GET postback\) received 2 callbacks/,
    'the tracker got its postbacks';
like $out, qr/webhook-signature: v1,/, 'signatures shown';
like $out, qr/== capture: \d+ events sent on, 1 repeated status not sent/,
    'the reloaded thank-you page sent nothing';
like $out, qr/"event" : "CHARGEBACK".*"transaction" : "HP1042"/s,
    "the provider's notification became a callback";
like $out, qr/x-api-key: \[secret\]/, 'the secret header shown hidden';
like $out, qr/"X-Api-Key: \[secret\]"/, '... also in the delivery detail';
like $out, qr/error log: clean/, 'error log clean';

for my $secret (qw(members-area-token members-api-key
                   MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw))
{
    unlike $out, qr/\Q$secret\E/, "'$secret' not in the demo's output";
}

done_testing;
