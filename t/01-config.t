# Configuration: the module loads with no directives at all, and bad
# configuration is refused at `nginx -t` with a message naming the directive
# and the bad part.

use strict;
use warnings;
use Test::More;
use PBTest;

my $t = PBTest->new;
$t->allow_log(qr/\[emerg\]/);

sub conf_with {
    my ($http) = @_;
    return "load_module %%MODULE%%;\nevents {}\nhttp {\n"
        . $t->http_common . "\n$http\n}\n";
}

# Loads with nothing configured (as Debian's dh_nginx checks).
$t->nginx_conf("load_module %%MODULE%%;\nevents {}\n");
my ($rc, $out) = $t->test_conf;
is $rc, 0, 'module loads with no directives' or diag $out;

my $ok = <<'EOF';
postback_zone pb:1m;
postback_field status $.data['purchase'].status;
postback_field first $.items[0].sku;
postback_field click $arg_click_id;
postback_event $postback_status;
postback_callback a url=http://127.0.0.1:9/x/$postback_status events=A,B
    method=post_form param=s=$postback_status "header=X-A: b $postback_click"
    auth=basic:u:p timeout=3s max_conns=2;
postback_callback b url=https://u:p@127.0.0.1:9/ events=* method=get
    if=$postback_first disable_after=off disable_on_error=off;
postback_callback c url=http://127.0.0.1:9/j 'body={"s":"$postback_status","d":$postback_data}'
    auth=bearer:tok disable_after=50 disable_on_error=30m
    proxy=http://u:p%40$s@proxy.example:3128/;
server {
    listen 127.0.0.1:%%PORT_front%%;
    location / {
        postback on;
        postback_buffer_size 1m;
        postback_callback d url=http://127.0.0.1:9/d;
    }
    location /s/ { postback_status; }
}
EOF
$t->nginx_conf(conf_with($ok));
($rc, $out) = $t->test_conf;
is $rc, 0, 'a configuration using every directive and key is accepted'
    or diag $out;

# "postback on" needs a callback in effect where requests are served: a
# server's own level is left to its locations, an "if" to its location,
# and the status location examines nothing.
$t->nginx_conf(conf_with(<<'EOF'));
postback_zone pb:1m;
server {
    listen 127.0.0.1:%%PORT_front%%;
    postback on;
    if ($arg_deny) { return 403; }
    location /buy/ {
        postback_callback a url=http://127.0.0.1:9/a;
        if ($arg_x) { return 404; }
    }
    location /s/ { postback_status; }
    location /doc/ { postback off; }
}
EOF
($rc, $out) = $t->test_conf;
is $rc, 0, '"postback on" with its callbacks in each location is accepted'
    or diag $out;
unlike $out, qr/\[warn\]/, '... with no warning';

# A level's own callbacks hide the outer ones (as add_header): a warning
# for each level that does it, naming both.
$t->nginx_conf(conf_with(<<'EOF'));
postback_zone pb:1m;
postback_callback a url=http://127.0.0.1:9/a;
postback_callback b url=http://127.0.0.1:9/b;
server {
    listen 127.0.0.1:%%PORT_front%%;
    location /inherit/ { postback on; }
    location /own/ {
        postback on;
        postback_callback d url=http://127.0.0.1:9/d;
        location /own/deeper/ { postback_callback e url=http://127.0.0.1:9/e; }
    }
}
server {
    listen 127.0.0.1:%%PORT_front2%%;
    server_name other.example;
    postback_callback s url=http://127.0.0.1:9/s;
    location / { postback on; }
}
EOF
($rc, $out) = $t->test_conf;
is $rc, 0, 'callbacks hiding outer ones: accepted' or diag $out;
like $out, qr/\[warn\] the callbacks of location "\/own\/" \("d"\) hide the outer level's \("a", "b"\): a level with callbacks of its own inherits none; to send those from here too, define them here again under other names/,
    '... a warning names the location, its callbacks and the hidden ones';
like $out, qr/\[warn\] the callbacks of location "\/own\/deeper\/" \("e"\) hide the outer level's \("d"\)/,
    "... a nested location hides its location's";
like $out, qr/\[warn\] the callbacks of server "other.example" \("s"\) hide the outer level's \("a", "b"\)/,
    "... a server hides the http level's";
is scalar(() = $out =~ /\[warn\]/g), 3, '... and only these three warnings'
    or diag $out;

# A host name in an http block without servers: the http level has no
# resolver at all then (nginx makes its empty one while merging servers).
$t->nginx_conf(conf_with('postback_zone pb:1m;'
                         . ' postback_callback a url=http://hook.example/;'));
($rc, $out) = $t->test_conf;
is $rc, 0, 'a host name, and no server: accepted' or diag $out;

# Each bad configuration and a piece of the message it must give.
my $cb = 'postback_zone pb:1m; postback_callback a url=http://h/';
my @bad = (
    [ 'postback_zone pb;', qr/invalid zone "pb", expected name:size/ ],
    [ 'postback_zone pb:1k;', qr/zone "pb:1k" is too small/ ],
    [ 'postback_zone pb:1m; postback_zone pc:1m;',
      qr/"postback_zone" directive is duplicate/ ],
    [ 'postback_zone pb:1m spool;',
      qr/invalid parameter "spool", expected spool=path or history=size/ ],
    [ 'postback_zone pb:1m history=1m;',
      qr/"history=" keeps finished deliveries in the spool: it needs "spool="/ ],
    [ 'postback_zone pb:1m spool=/tmp/j history=lots;',
      qr/invalid history size "history=lots"/ ],
    [ 'postback_field status $.a[;',
      qr/invalid JSONPath "\$\.a\[" of field "status"/ ],
    [ 'postback_field st-atus $.a;', qr/invalid field name "st-atus"/ ],
    [ 'postback_field event $.a;', qr/\$postback_event is reserved/ ],
    [ 'postback_field a $.a; postback_field a $.b;', qr/duplicate field "a"/ ],
    [ 'postback_zone pb:1m; postback_callback a events=A;',
      qr/callback "a" has no "url="/ ],
    [ 'postback_zone pb:1m; postback_callback a url=ftp://x/;',
      qr/"url=ftp:\/\/x\/" of callback "a": url must start with http/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://$host/x;',
      qr/callback "a": variables are not allowed in the url's host/ ],
    [ "$cb method=put;",
      qr/"method=put" of callback "a": method must be get, post_form or post_json/ ],
    [ "$cb colour=red;", qr/"colour=red" of callback "a": unknown key/ ],
    [ "$cb nokey;", qr/"nokey" of callback "a", expected key=value/ ],
    [ "$cb; postback_callback a url=http://h/;", qr/duplicate callback "a"/ ],
    [ "$cb method=get body=x;",
      qr/callback "a": "body=" needs method=post_form or method=post_json/ ],
    [ "$cb \"header=Bad Name: x\";", qr/callback "a": invalid header name/ ],
    [ "$cb auth=digest:x;",
      qr/"auth=digest:x" of callback "a": auth must be basic/ ],
    [ "$cb timeout=soon;", qr/"timeout=soon" of callback "a": invalid time/ ],
    [ "$cb ca_file=/nonexistent.pem;",
      qr/"ca_file=\/nonexistent.pem" of callback "a": ca_file cannot be read/ ],
    [ "$cb secret=MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw;",
      qr/callback "a": secret must be whsec_ and the key in base64/ ],
    [ "$cb proxy=https://p:3128;",
      qr/"proxy=https:\/\/p:3128" of callback "a": proxy must be http:\/\/host:port \(an HTTP proxy\)/ ],
    [ "$cb proxy=socks5://p:1080;", qr/of callback "a": proxy must be http:\/\/host:port/ ],
    [ "$cb proxy=p:3128;", qr/"proxy=p:3128" of callback "a": proxy must be http:\/\/host:port/ ],
    [ "$cb proxy=http://p;",
      qr/"proxy=http:\/\/p" of callback "a": proxy has no port: write proxy=http:\/\/host:port/ ],
    [ "$cb proxy=http://p:0;",
      qr/"proxy=http:\/\/p:0" of callback "a": the proxy's port "0" is not a number from 1 to 65535/ ],
    [ "$cb proxy=http://u:pw\@p:65536;",
      qr/of callback "a": the proxy's port "65536" is not a number from 1 to 65535/ ],
    [ "$cb proxy=http://p:3128/x;",
      qr/"proxy=http:\/\/p:3128\/x" of callback "a": proxy must be http:\/\/host:port, with no path/ ],
    [ "$cb proxy=http://\$host:3128;",
      qr/of callback "a": variables are not allowed in the proxy's host and port/ ],
    [ "$cb proxy=http://:3128;", qr/"proxy=http:\/\/:3128" of callback "a": proxy has no host/ ],
    [ "$cb proxy=http://u:pw\@;", qr/of callback "a": proxy has no host/ ],
    [ "$cb attempts=0;", qr/"attempts=0" of callback "a": attempts must be 1 to 100/ ],
    [ "$cb disable_on_error=soon;",
      qr/"disable_on_error=soon" of callback "a": must be a time up to 30d, or off/ ],
    [ "$cb disable_after=40d;",
      qr/"disable_after=40d" of callback "a": must be a time up to 30d, or off/ ],
    [ "$cb retry=5s,soon;", qr/"retry=5s,soon" of callback "a": invalid time in retry=/ ],
    [ "$cb max_conns=0;", qr/"max_conns=0" of callback "a": max_conns must be/ ],
    [ "$cb events=A,,B;", qr/"events=A,,B" of callback "a": empty event name/ ],
    # nginx splits at spaces: "events=APPROVED," then "COMPLETE"
    [ "$cb events=APPROVED, COMPLETE;",
      qr/"events=APPROVED," of callback "a": no spaces in events=: write events=APPROVED,COMPLETE\b/ ],
    [ "$cb events=APPROVED ,COMPLETE, REFUNDED;",
      qr/"events=APPROVED" of callback "a": no spaces in events=: write events=APPROVED,COMPLETE,REFUNDED\b/ ],
    [ "$cb retry=5s, 1m;",
      qr/"retry=5s," of callback "a": no spaces in retry=: write retry=5s,1m\b/ ],
    [ 'postback_zone pb:1m; postback_key $arg_tx;'
      . ' postback_timeout_event ABANDONED after=1h from=STARTED, PENDING;',
      qr/"from=STARTED,": no spaces in from=: write from=STARTED,PENDING\b/ ],
    # if= is true unless empty or "0": a comparison in it is always true
    [ "$cb if=\$arg_p=1234;",
      qr/"if=\$arg_p=1234" of callback "a": if= skips the callback when its value is empty or "0", and this one never is; to compare, use map: map \$arg_p \$wanted \{ 1234 1; default 0; \} and if=\$wanted/ ],
    [ "$cb if=\$arg_p==1234;",
      qr/"if=\$arg_p==1234" of callback "a": .* map \$arg_p \$wanted \{ 1234 1; default 0; \}/ ],
    [ "$cb if=\$arg_p!=1234;",
      qr/"if=\$arg_p!=1234" of callback "a": .* map \$arg_p \$wanted \{ 1234 0; default 1; \}/ ],
    [ "$cb if=\$arg_p~*^ab;",
      qr/"if=\$arg_p~\*\^ab" of callback "a": .* map \$arg_p \$wanted \{ ~\*\^ab 1; default 0; \}/ ],
    [ "$cb if=\$arg_p!~^ab;",
      qr/"if=\$arg_p!~\^ab" of callback "a": .* map \$arg_p \$wanted \{ ~\^ab 0; default 1; \}/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://h:70000/;',
      qr/"url=http:\/\/h:70000\/" of callback "a": the url's port "70000" is not a number from 1 to 65535/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://h:0/x;',
      qr/"url=http:\/\/h:0\/x" of callback "a": the url's port "0" is not/ ],
    [ 'postback_zone pb:1m; postback_callback a url=https://u:p@h:8o?a=1;',
      qr/of callback "a": the url's port "8o" is not a number/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://h:/;',
      qr/of callback "a": the url's port "" is not a number/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://[::1]:65536/;',
      qr/of callback "a": the url's port "65536" is not a number/ ],
    [ 'postback_zone pb:1m; postback_callback a url=http://:80/;',
      qr/"url=http:\/\/:80\/" of callback "a": url has no host/ ],
    [ "postback_zone pb:1m; postback_callback a url=http://h/\${x;",
      qr/"url=http:\/\/h\/\$\{x" of callback "a"/ ],
    [ 'postback_callback a url=http://h/;',
      qr/"postback_callback" requires "postback_zone"/ ],
    [ 'server { listen 127.0.0.1:%%PORT_front%%; location / { postback on; } }',
      qr/"postback on" requires "postback_zone"/ ],
    # capture with no callback in effect: nothing would ever be sent
    [ 'postback_zone pb:1m; server { listen 127.0.0.1:%%PORT_front%%;'
      . ' location /x/ { postback on; } }',
      qr/"postback on" in location "\/x\/" with no "postback_callback" \(here or at an outer level\): nothing would be sent; add a callback or write "postback off" there/ ],
    [ 'postback_zone pb:1m; server { listen 127.0.0.1:%%PORT_front%%;'
      . ' postback request; location /s/ { postback_status; }'
      . ' location /x/ { proxy_pass http://127.0.0.1:9; } }',
      qr/"postback request" in location "\/x\/" with no "postback_callback"/ ],
    [ 'postback_zone pb:1m; server { listen 127.0.0.1:%%PORT_front%%;'
      . ' server_name shop.example; postback on; }',
      qr/"postback on" in server "shop.example" with no "postback_callback"/ ],
    [ 'server { listen 127.0.0.1:%%PORT_front%%; location / { postback_status; } }',
      qr/"postback_status" directive requires "postback_zone"/ ],
    [ 'postback_zone pb:1m; server { listen 127.0.0.1:%%PORT_front%%;'
      . ' location ~ ^/s/ { postback_status; } }',
      qr/"postback_status" directive cannot be used in a regex location/ ],
    [ 'postback_zone pb:1m; server { listen 127.0.0.1:%%PORT_front%%;'
      . ' location / { postback_buffer_size 0; } }',
      qr/"postback_buffer_size" directive must be between 1 and 64m/ ],
);

for my $case (@bad) {
    my ($http, $want) = @$case;
    $t->nginx_conf(conf_with($http));
    my ($code, $text) = $t->test_conf;
    isnt $code, 0, "refused: $http";
    like $text, $want, '... with a message naming the problem';
}

# A quoted list may have spaces around its names.
$t->receiver('hook');
$t->nginx_conf($t->checkout_conf(callbacks => <<'EOF'));
            postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/h
                "events= APPROVED , COMPLETE " method=get param=e=$postback_event;
EOF
$t->start;
my (undef, $moved) = $t->counted('/status/',
                                 sub { $t->get('/buy/x?status=REFUNDED&tx=1') });
is $moved->{no_match}, 1, 'an event not listed is not sent'
    or diag explain $moved;
$t->get("/buy/x?status=$_&tx=$_") for qw(COMPLETE APPROVED);
my $got = $t->wait_received(hook => 2);
is_deeply [ sort map { $_->{args}{e} } @$got ], [qw(APPROVED COMPLETE)],
    '"events= APPROVED , COMPLETE ": both names, without their spaces';

$t->stop;
done_testing;
