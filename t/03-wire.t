# Wire format: what callback receivers actually get, for every method.
#
# - GET: params appended to the url (with '&' when the url has a query
#   already, '?' otherwise), hostile values from the upstream JSON (+ & @ =
#   % space, non-ASCII, quotes, newlines, NUL) arriving intact; variables in
#   the url's path and query percent-encoded, so a value with '/' or '?'
#   cannot change the path or the query.
# - post_form: Content-Type and the urlencoded body, same values intact.
# - post_json default body: every member, "data" equal to the upstream
#   document, id equal to the webhook-id header, created_at format, "params"
#   only with param=, still valid JSON (UTF-8) with quotes, backslashes,
#   newlines and invalid UTF-8 (from a request header) in the values.
# - body= templates: post_json (a hostile value stays inside its JSON
#   string, $postback_data is raw JSON) and post_form (percent-encoded).
# - header=: values from fields; CR LF (or NUL) in a value becomes spaces
#   (no header injection), counted in capture.header_values_sanitized; an
#   empty value still sends the header; header=Content-Type replaces the
#   module's own.
# - auth=basic, auth=bearer, user:pass@ in the url; no secret on the status
#   page.
# - webhook-id and User-Agent on every request, unique per delivery.

use strict;
use warnings;

use Encode ();
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Test::More;
use Time::HiRes qw(time sleep);
use Time::Local qw(timegm);

use PBTest;

# where the receivers are: an address (nginx's connections send) or, from
# the -curl.t twin of this file, a name (libcurl sends)
my $HOST = $ENV{PB_RECEIVER_HOST} // '127.0.0.1';
my $ENGINE = $HOST eq '127.0.0.1' ? 'nginx' : 'curl';

my $t = PBTest->new;

# ---------------------------------------------------------------- the document

# Hostile values, as characters; the upstream sends them as UTF-8 JSON.
my %V = (
    plus  => 'a+b+c',
    amp   => 'x&y=z&',
    at    => 'ana+tag@example.com',
    space => ' two  words ',
    eq    => 'k=v==',
    pct   => '100% %41 %zz %',
    utf8  => "caf\x{e9} \x{4e2d}\x{6587} \x{1F600}",
    path  => '../up/x?evil=1#frag',
    quote => 'say "hi" \\ back\\slash',
    nl    => "line1\nline2\r\n\ttab \x01",
    brace => '"}, "x": {"y": "',
    crlf  => "a\r\nX-Injected: 1",
    nul   => "a\x00b",      # \u0000 in the JSON: C strings must not cut it
    colon => 'at 12:',      # a header line ending like an empty "Name:"
);
my @VNAMES = sort keys %V;

my $DOC = { kind => 'PAID', num => 19.99, v => \%V };
my $DOC_JSON = JSON::PP->new->utf8->canonical->encode($DOC);

# Every postback_field: the ones above plus these.
my @FIELDS = (@VNAMES, qw(kind num missing raw));

# Request header value for the "raw" field ($http_x_raw): bytes that are not
# UTF-8 around a quote and a backslash.  (A header, not $arg_raw: nginx does
# not decode $arg_*, so "%FF" in a query would stay plain ASCII.)
my $RAW_HEADER = "\xff\xfe q\"uote\\";
# ... as the module puts it into JSON: each invalid byte one U+FFFD.
my $RAW_JSON = "\x{FFFD}\x{FFFD} q\"uote\\";

sub bytes { Encode::encode('UTF-8', $_[0]) }

# Bodies must be strict UTF-8, then JSON.
sub decode_strict {
    my ($bytes) = @_;
    my $chars = eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK | Encode::LEAVE_SRC) };
    return (undef, "not UTF-8: $@") unless defined $chars;
    my $doc = eval { JSON::PP->new->decode($chars) };
    return (undef, "not JSON: $@") unless defined $doc;
    return ($doc, '');
}

# ---------------------------------------------------------------- servers

$t->upstream(app => sub {
    { headers => [ 'Content-Type' => 'application/json' ], body => $DOC_JSON };
});
$t->receiver($_) for qw(get form json tpl hdr auth);

my $fields = join '', map { "    postback_field $_ \$.v.$_;\n" } @VNAMES;
# param=NAME=$postback_NAME for every hostile value, plus a literal around a
# variable and a field the document lacks.
my $params = join ' ', (map { "param=$_=\$postback_$_" } @VNAMES),
                       'param=mixed=<$postback_amp>', 'param=none=$postback_missing';
my $common = $t->http_common;

$t->nginx_conf(<<"EOF");
load_module %%MODULE%%;
worker_processes 1;
events {}
http {
$common
    postback_zone wire:1m;
    postback_field kind \$.kind;
    postback_field num \$.num;
    postback_field missing \$.v.nope;
    postback_field raw \$http_x_raw;
$fields
    postback_event \$postback_kind;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        postback on;

        location /get/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback get_q method=get $params
                url=http://$HOST:%%PORT_get%%/cb/\$postback_path/end?fixed=1&u=\$postback_amp;
            postback_callback get_plain method=get param=plus=\$postback_plus
                url=http://$HOST:%%PORT_get%%/plain;
        }

        location /form/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback form method=post_form $params
                url=http://$HOST:%%PORT_form%%/form;
        }

        location /json/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback json_plain url=http://$HOST:%%PORT_json%%/plain;
            postback_callback json_params url=http://$HOST:%%PORT_json%%/params
                param=a=\$postback_plus param=b=literal param=c=\$postback_raw;
        }

        location /tpl/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback tpl_json url=http://$HOST:%%PORT_tpl%%/json
                'body={"kind":"\$postback_kind","brace":"\$postback_brace","raw":"\$postback_raw","doc":\$postback_data}';
            postback_callback tpl_form url=http://$HOST:%%PORT_tpl%%/form
                method=post_form
                'body=kind=\$postback_kind&amp=\$postback_amp&utf8=\$postback_utf8&lit=a+b&doc=\$postback_data';
        }

        location /hdr/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback hdr url=http://$HOST:%%PORT_hdr%%/hdr
                "header=X-Kind: \$postback_kind"
                "header=X-Mixed: at=\$postback_at; q=\$postback_quote"
                "header=X-Utf8: \$postback_utf8"
                "header=X-Crlf: \$postback_crlf"
                "header=X-Nul: \$postback_nul"
                "header=X-Missing: \$postback_missing"
                "header=X-Colon: \$postback_colon"
                "header=X-Static: fixed value";
            # a header the module sets itself, given again by the config
            postback_callback hdr_type url=http://$HOST:%%PORT_hdr%%/type
                "header=Content-Type: application/vnd.shop+json";
        }

        location /auth/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback basic url=http://$HOST:%%PORT_auth%%/basic
                auth=basic:alice:open:sesame;
            postback_callback bearer url=http://$HOST:%%PORT_auth%%/bearer
                auth=bearer:tok_123.abc-XYZ;
            postback_callback userinfo url=http://bob:hunter2\@$HOST:%%PORT_auth%%/userinfo;
            postback_callback userinfo_enc
                url=http://ana%40example.com:p%3Ass%40\@$HOST:%%PORT_auth%%/userinfo-enc;
        }

        location /status { postback_status; }
    }
}
EOF
$t->start;

is_deeply $t->engines('/status'), [ $ENGINE ], "every callback sent by $ENGINE";

# ---------------------------------------------------------------- helpers

sub status {
    my $r = $t->get('/status?limit=1000');
    die "status page: $r->{status}\n" unless ($r->{status} // 0) == 200;
    return JSON::PP->new->utf8->decode($r->{body});
}

sub callback_status {
    my ($st, $name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ $st->{callbacks} };
    return $cb // {};
}

# Waits until the named callbacks finished (delivered or failed) $n
# deliveries each; returns the last status page.
sub wait_finished {
    my ($n, @names) = @_;
    my $st;
    my $deadline = time + 10;
    while (1) {
        $st = status();
        last unless grep {
            my $cb = callback_status($st, $_);
            ($cb->{delivered} // 0) + ($cb->{failed} // 0) < $n;
        } @names;
        return $st if time > $deadline;
        sleep 0.05;
    }
    return $st;
}

# The checkout: every location proxies to the same document.
sub checkout {
    my ($path, @headers) = @_;
    my $r = $t->get($path, headers => \@headers);
    is $r->{status}, 200, "checkout $path answered";
    ok $r->{body} eq $DOC_JSON, '... with the upstream body unchanged';
    return $r;
}

sub by_path {
    my ($records, $path) = @_;
    my ($rec) = grep { $_->{path} eq $path } @$records;
    return $rec // {};
}

# ---------------------------------------------------------------- GET

subtest 'GET: params and url variables' => sub {
    checkout('/get/1');
    my $recs = $t->wait_received(get => 2);
    is scalar @$recs, 2, 'two requests (get_q, get_plain)';

    my ($q) = grep { $_->{path} =~ m{^/cb/} } @$recs;
    $q //= {};
    is $q->{method}, 'GET', 'method';
    is $q->{body}, '', 'no body';
    ok !exists $q->{headers}{'content-type'}, 'no Content-Type';

    # The path variable: one segment, whatever '/' '?' '#' it holds.
    like $q->{path}, qr{^/cb/[^/?#]+/end$}, 'path variable stays one segment'
        or diag "uri: $q->{uri}";
    is PBTest::HTTP::url_decode($q->{path}), "/cb/$V{path}/end", 'path variable decodes back';
    ok !exists $q->{args}{evil}, "'?' in the path value starts no query";

    # The url had "?fixed=1&u=$postback_amp": params follow with '&'.
    like $q->{query}, qr/^fixed=1&u=[^&]*&/, "params after the url's query, with '&'";
    is $q->{args}{fixed}, 1, 'url query kept';
    is $q->{args}{u}, $V{amp}, 'variable in the url query percent-encoded';
    for my $name (@VNAMES) {
        is $q->{args}{$name}, bytes($V{$name}), "param $name intact";
    }
    is $q->{args}{mixed}, "<$V{amp}>", 'literal around a variable';
    ok exists $q->{args}{none} && $q->{args}{none} eq '', 'missing field: empty param';
    # No stray pairs: each '&' of the values was encoded.
    my @pairs = split /&/, $q->{query};
    is scalar @pairs, 2 + @VNAMES + 2, "as many pairs as params and the url's own";

    my $plain = by_path($recs, '/plain');
    is $plain->{query}, 'plus=a%2Bb%2Bc', "url without query: '?' then the params"
        or diag "uri: $plain->{uri}";
    is $plain->{args}{plus}, 'a+b+c', "'+' is not a space";
};

# ---------------------------------------------------------------- post_form

subtest 'post_form: urlencoded body' => sub {
    checkout('/form/1');
    my ($rec) = @{ $t->wait_received(form => 1) };
    is $rec->{method}, 'POST', 'method';
    is $rec->{uri}, '/form', 'params not in the url';
    is $rec->{headers}{'content-type'}, 'application/x-www-form-urlencoded', 'Content-Type';
    is $rec->{headers}{'content-length'}, length $rec->{body}, 'Content-Length';
    unlike $rec->{body}, qr/[^A-Za-z0-9\-._~%=&]/, 'body holds only urlencoded characters';

    my $args = PBTest::HTTP::parse_query($rec->{body});
    for my $name (@VNAMES) {
        is $args->{$name}, bytes($V{$name}), "param $name intact";
    }
    is $args->{mixed}, "<$V{amp}>", 'literal around a variable';
    is $args->{none}, '', 'missing field: empty param';
    is scalar(split /&/, $rec->{body}), @VNAMES + 2, 'as many pairs as params';
};

# ---------------------------------------------------------------- post_json

subtest 'post_json: default body' => sub {
    my $before = time;
    checkout('/json/1', 'X-Raw' => $RAW_HEADER);
    my $recs = $t->wait_received(json => 2);
    my $plain = by_path($recs, '/plain');
    my $with = by_path($recs, '/params');

    for my $rec ($plain, $with) {
        is $rec->{method}, 'POST', "$rec->{path}: method";
        is $rec->{headers}{'content-type'}, 'application/json', "$rec->{path}: Content-Type";
        ok !exists $rec->{headers}{expect}, "$rec->{path}: no Expect: 100-continue";
    }

    my ($body, $err) = decode_strict($plain->{body});
    ok $body, 'body is UTF-8 JSON despite invalid UTF-8 in a value' or diag $err;
    $body //= {};
    is_deeply [ sort keys %$body ], [ sort qw(id event callback created_at fields data) ],
        'members (no "params" without param=)';
    like $body->{id}, qr/^msg_[0-9a-f]{24}$/, 'id format';
    is $body->{id}, $plain->{headers}{'webhook-id'}, 'id is the webhook-id header';
    is $body->{event}, 'PAID', 'event';
    is $body->{callback}, 'json_plain', 'callback';

    like $body->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        'created_at: RFC 3339 UTC with milliseconds';
    if ($body->{created_at} =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z$/) {
        my $at = timegm($6, $5, $4, $3, $2 - 1, $1) + $7 / 1000;
        ok $at >= $before - 1 && $at <= time + 1, 'created_at is now'
            or diag "created_at $body->{created_at}, test time " . gmtime($before);
    }

    my %want = (%V, kind => 'PAID', num => '19.99', missing => '', raw => $RAW_JSON);
    is_deeply [ sort keys %{ $body->{fields} } ], [ sort @FIELDS ], 'fields: every postback_field';
    for my $name (sort keys %want) {
        is $body->{fields}{$name}, $want{$name}, "fields.$name";
    }
    ok !grep({ ref } values %{ $body->{fields} }), 'fields are strings';
    is_deeply $body->{data}, JSON::PP->new->utf8->decode($DOC_JSON), 'data is the upstream document';

    ($body, $err) = decode_strict($with->{body});
    ok $body, 'with param=: valid JSON' or diag $err;
    $body //= {};
    is_deeply $body->{params}, { a => 'a+b+c', b => 'literal', c => $RAW_JSON },
        'params object (invalid UTF-8 replaced)';
    is $body->{callback}, 'json_params', 'callback';
    is $body->{id}, $with->{headers}{'webhook-id'}, 'id is the webhook-id header';
    isnt $with->{headers}{'webhook-id'}, $plain->{headers}{'webhook-id'},
        'two callbacks of one event: two ids';
};

# ---------------------------------------------------------------- body=

subtest 'body= templates' => sub {
    checkout('/tpl/1', 'X-Raw' => $RAW_HEADER);
    my $recs = $t->wait_received(tpl => 2);

    my $json = by_path($recs, '/json');
    is $json->{headers}{'content-type'}, 'application/json', 'post_json: Content-Type';
    my ($body, $err) = decode_strict($json->{body});
    ok $body, 'post_json template: valid JSON' or diag "$err\nbody: $json->{body}";
    $body //= {};
    is_deeply [ sort keys %$body ], [qw(brace doc kind raw)],
        'the hostile value added no member';
    is $body->{brace}, $V{brace}, 'quote and brace stay inside their string';
    is $body->{kind}, 'PAID', 'plain value';
    is $body->{raw}, $RAW_JSON, 'invalid UTF-8 replaced';
    is_deeply $body->{doc}, JSON::PP->new->utf8->decode($DOC_JSON),
        '$postback_data inserted as raw JSON';

    my $form = by_path($recs, '/form');
    is $form->{headers}{'content-type'}, 'application/x-www-form-urlencoded',
        'post_form: Content-Type';
    my $args = PBTest::HTTP::parse_query($form->{body});
    is_deeply [ sort keys %$args ], [qw(amp doc kind lit utf8)],
        "values' '&' and '=' added no pair";
    is $args->{amp}, $V{amp}, 'value percent-encoded';
    is $args->{utf8}, bytes($V{utf8}), 'non-ASCII value';
    is $args->{lit}, 'a b', "the template's own text is sent as written";
    is_deeply eval { JSON::PP->new->utf8->decode($args->{doc}) },
        JSON::PP->new->utf8->decode($DOC_JSON), '$postback_data percent-encoded';
};

# ---------------------------------------------------------------- header=

subtest 'custom headers' => sub {
    my $sanitized = status()->{capture}{header_values_sanitized};
    checkout('/hdr/1');
    my $recs = $t->wait_received(hdr => 2);
    my $rec = by_path($recs, '/hdr');
    my $h = $rec->{headers} // {};
    is $h->{'x-kind'}, 'PAID', 'value from a field';
    is $h->{'x-mixed'}, "at=$V{at}; q=$V{quote}", 'template with two fields';
    is $h->{'x-utf8'}, bytes($V{utf8}), 'non-ASCII bytes as they are';
    is $h->{'x-static'}, 'fixed value', 'literal value';
    is $h->{'x-crlf'}, 'a  X-Injected: 1', 'CR LF became spaces';
    ok !exists $h->{'x-injected'}, 'no injected header';
    is $h->{'x-nul'}, 'a b', 'NUL became a space';
    # An empty value is still a header (curl drops "Name:" lines with
    # nothing after the colon unless told otherwise).
    is $h->{'x-missing'}, '', 'a field the document lacks: empty header';
    is $h->{'x-colon'}, 'at 12:', 'a value ending with a colon';
    # the headers' copy was cleaned, not the value: the body keeps it
    my ($body) = decode_strict($rec->{body} // '');
    is $body->{fields}{crlf}, $V{crlf}, 'the delivery arrived, its body with the value as it is';

    my $st = wait_finished(1, 'hdr');
    cmp_ok $st->{capture}{header_values_sanitized}, '>', $sanitized,
        'capture.header_values_sanitized went up';
    is callback_status($st, 'hdr')->{delivered}, 1, 'delivered';

    # Content-Type is a single-value field: the configured one replaces the
    # module's, rather than both being sent.
    is by_path($recs, '/type')->{headers}{'content-type'}, 'application/vnd.shop+json',
        'header=Content-Type replaces application/json';
};

# ---------------------------------------------------------------- auth

subtest 'authentication' => sub {
    checkout('/auth/1');
    my $recs = $t->wait_received(auth => 4);
    my %auth = map { $_->{path} => $_->{headers}{authorization} } @$recs;

    is $auth{'/basic'}, 'Basic ' . encode_base64('alice:open:sesame', ''),
        'auth=basic (password with a colon)';
    is $auth{'/bearer'}, 'Bearer tok_123.abc-XYZ', 'auth=bearer';
    is $auth{'/userinfo'}, 'Basic ' . encode_base64('bob:hunter2', ''),
        'user:pass@ in the url';
    # RFC 3986 3.2.1: userinfo is percent-encoded (the only way to have '@'
    # or ':' in a name or password); curl and browsers decode it.
    is $auth{'/userinfo-enc'}, 'Basic ' . encode_base64('ana@example.com:p:ss@', ''),
        'percent-encoded user:pass@ is decoded';
    my ($plain) = grep { $_->{path} eq '/userinfo' } @$recs;
    is $plain->{headers}{host}, "$HOST:" . $t->port('auth'), 'Host without the userinfo';

    my $st = wait_finished(1, qw(basic bearer userinfo userinfo_enc));
    is callback_status($st, 'userinfo')->{url}, "http://$HOST:" . $t->port('auth'),
        'status page: callback url without user:pass';
    my ($d) = grep { $_->{callback} eq 'userinfo' } @{ $st->{deliveries} };
    is $d->{url}, "http://$HOST:" . $t->port('auth') . '/userinfo',
        'status page: delivery url without user:pass';
    my $page = $t->get('/status?limit=1000')->{body};
    for my $secret (qw(hunter2 sesame tok_123 p%3Ass)) {
        ok index($page, $secret) < 0, "status page never shows '$secret'";
    }
    ok index($t->error_log, 'hunter2') < 0, 'nor does the error log';
};

# ---------------------------------------------------------------- every request

subtest 'webhook-id and User-Agent on every request' => sub {
    my @recs = map { @{ $t->received($_) } } qw(get form json tpl hdr auth);
    is scalar @recs, 13, 'all requests of this test';
    my %ids;
    for my $rec (@recs) {
        my $id = $rec->{headers}{'webhook-id'} // '';
        like $id, qr/^msg_[0-9a-f]{24}$/, "$rec->{path}: webhook-id";
        is $rec->{headers}{'user-agent'}, 'ngx_http_postback_module', "$rec->{path}: User-Agent";
        $ids{$id}++;
    }
    is scalar keys %ids, scalar @recs, 'all ids differ';

    my $st = status();
    my %known = map { $_->{id} => $_->{callback} } @{ $st->{deliveries} };
    is scalar(grep { $known{$_} } keys %ids), scalar keys %ids,
        'each is the id of a delivery on the status page';
    is scalar(grep { $_->{state} ne 'delivered' } @{ $st->{deliveries} }), 0,
        'every delivery delivered';
};

$t->stop;
done_testing;
