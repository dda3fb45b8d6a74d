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
    if=$postback_first;
postback_callback c url=http://127.0.0.1:9/j 'body={"s":"$postback_status","d":$postback_data}'
    auth=bearer:tok;
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

# Each bad configuration and a piece of the message it must give.
my $cb = 'postback_zone pb:1m; postback_callback a url=http://h/';
my @bad = (
    [ 'postback_zone pb;', qr/invalid zone "pb", expected name:size/ ],
    [ 'postback_zone pb:1k;', qr/zone "pb:1k" is too small/ ],
    [ 'postback_zone pb:1m; postback_zone pc:1m;',
      qr/"postback_zone" directive is duplicate/ ],
    [ 'postback_zone pb:1m spool;',
      qr/invalid parameter "spool", expected spool=path/ ],
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
    [ "$cb attempts=0;", qr/"attempts=0" of callback "a": attempts must be 1 to 100/ ],
    [ "$cb retry=5s,soon;", qr/"retry=5s,soon" of callback "a": invalid time in retry=/ ],
    [ "$cb max_conns=0;", qr/"max_conns=0" of callback "a": max_conns must be/ ],
    [ "$cb events=A,,B;", qr/"events=A,,B" of callback "a": empty event name/ ],
    [ "postback_zone pb:1m; postback_callback a url=http://h/\${x;",
      qr/"url=http:\/\/h\/\$\{x" of callback "a"/ ],
    [ 'postback_callback a url=http://h/;',
      qr/"postback_callback" requires "postback_zone"/ ],
    [ 'server { listen 127.0.0.1:%%PORT_front%%; location / { postback on; } }',
      qr/"postback on" requires "postback_zone"/ ],
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

$t->stop;
done_testing;
