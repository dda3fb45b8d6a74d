# Large JSON bodies, read by the scanner as their buffers pass (pb_jscan).
#
# - postback_buffer_size 64m, a document of some 30 MB sent in 4k chunks,
#   plain and gzip'd (the inflated bytes are read, piece by piece): the
#   exact values of fields at its start (a string with escapes, surrogate
#   pairs and raw UTF-8), in the middle (the 150,000th item) and at its end
#   (a number, an object as compact JSON, a string after 20 MB of one
#   string); the client gets the upstream's bytes.
# - A large body that stops being JSON near its start is given up while
#   the rest is still on its way: the upstream holds the rest until the
#   log line naming the reason and the byte has been written, so the line
#   cannot come from the end of the body; the client still gets every
#   byte; counted malformed.  Plain and gzip'd.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Encode ();
use JSON::PP;
use Test::More;

use PBTest qw(eventually);

my $JSON = JSON::PP->new->utf8->canonical;

my $t = PBTest->new;
my $dir = $t->dir;

# ---------------------------------------------------------------- documents

my $ITEMS = 300_000;
my $MIDDLE = $ITEMS / 2;
my $PAD = 20 * 1024 * 1024;

# escapes, a surrogate pair, raw UTF-8: cut somewhere between buffers
my $NOTE_JSON = '"caf\u00e9 \"q\" \\\\ \ud83d\ude00 \u20ac r' . "\xc3\xa9sum\xc3\xa9"
              . ' \t."';
my $NOTE = "caf\xc3\xa9 \"q\" \\ \xf0\x9f\x98\x80 \xe2\x82\xac r\xc3\xa9sum\xc3\xa9 \t.";

# bad => 1: a control byte in a string near the start
sub big_doc {
    my ($tx, %o) = @_;
    return '{"status":"APPROVED",' . ($o{bad} ? qq("bad":"a\x01b",) : '')
         . qq("note":$NOTE_JSON,"items":[)
         . join(',', map { qq({"sku":"S-$_","qty":$_}) } 0 .. $ITEMS - 1)
         . '],"pad":"' . ('x' x $PAD) . '",'
         . qq("total":1234.5,"buyer":{"email":"a\@b.example", "tags" : ["x","y"]},)
         . qq("tx":"$tx"});
}

my %DOC = map { $_ => big_doc("T-$_") } qw(plain gzip);
$DOC{$_} = big_doc("T-$_", bad => 1) for qw(bad bad_gzip);
my $BAD_AT = index $DOC{bad}, "\x01";

# ---------------------------------------------------------------- servers

$t->upstream(app => sub {
    my ($req) = @_;
    my ($name) = $req->{path} =~ m{([^/]+)$};
    my $doc = $DOC{$name} // return { status => 404, body => 'no such document' };
    return { headers => [ 'Content-Type' => 'application/json' ], body => $doc,
             chunked => 1, chunk_size => 4096, gzip => scalar $name =~ /gzip/,
             # the bad ones: the rest after 64k waits for the test's signal
             $name =~ /bad/ ? (hold_after => 65536, hold_until => "$dir/go-$name")
                            : () };
});
$t->receiver('hook');

$t->nginx_conf($t->module_conf(<<"EOF"));
    postback_zone pb:1m;

    postback_field status \$.status;
    postback_field note   \$.note;
    postback_field middle \$.items[$MIDDLE].sku;
    postback_field qty    \$.items[$MIDDLE].qty;
    postback_field total  \$.total;
    postback_field buyer  \$.buyer;
    postback_field tx     \$.tx;
    postback_event \$postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;

        location /big/ {
            postback on;
            postback_buffer_size 64m;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/hook
                'body={"status":"\$postback_status","note":"\$postback_note","middle":"\$postback_middle","qty":"\$postback_qty","total":"\$postback_total","buyer":"\$postback_buyer","tx":"\$postback_tx"}';
        }

        location /status {
            postback_status;
        }
    }
EOF
$t->start;

sub counted { $t->counted('/status', @_) }

# ---------------------------------------------------------------- tests

for my $name (qw(plain gzip)) {
    subtest "30 MB, $name: the values at its start, middle and end" => sub {
        my ($r, $delta) = counted(sub { $t->get("/big/$name", timeout => 60) });
        is $r->{status}, 200, 'status';
        my $sent = $name eq 'gzip' ? PBTest::gzip($DOC{$name}) : $DOC{$name};
        is md5_hex($r->{body}), md5_hex($sent), "the client got the upstream's bytes";
        is_deeply $delta, { examined => 1, events => 1 }, 'examined, with an event';

        my ($rec) = grep { index($_->{body}, "\"T-$name\"") >= 0 }
                    @{ $t->wait_received(hook => ($name eq 'plain' ? 1 : 2), 20) };
        my $got = $rec && eval { $JSON->decode($rec->{body}) };
        is_deeply $got, {
            status => 'APPROVED',
            note   => Encode::decode_utf8($NOTE),
            middle => "S-$MIDDLE",
            qty    => "$MIDDLE",
            total  => '1234.5',
            buyer  => '{"email":"a@b.example","tags":["x","y"]}',
            tx     => "T-$name",
        }, 'the values, exact' or diag $rec && $rec->{body};
    };
}

for my $name (qw(bad bad_gzip)) {
    subtest "30 MB, $name: given up while the rest is on its way" => sub {
        my $from = length $t->error_log;
        my $logged;
        my ($r, $delta) = counted(sub {
            $t->get("/big/$name", timeout => 60, after_send => sub {
                $logged = eventually(sub {
                    substr($t->error_log, $from) =~ /postback: response is not valid JSON: control character in string at byte $BAD_AT\b/
                }, 20);
                $t->write_file("go-$name", '');
            });
        });
        ok $logged, 'logged with the reason and the byte, before the rest was sent';
        is $r->{status}, 200, 'status';
        my $sent = $name eq 'bad_gzip' ? PBTest::gzip($DOC{$name}) : $DOC{$name};
        ok !$r->{error} && md5_hex($r->{body}) eq md5_hex($sent),
            "the client got all of the upstream's bytes";
        is_deeply $delta, { examined => 1, malformed => 1 }, 'counted malformed';
    };
}

is scalar @{ $t->received('hook') }, 2, 'nothing sent for the bad ones';

$t->stop;
done_testing;
