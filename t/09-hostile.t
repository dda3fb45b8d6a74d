# Hostile input and faulty receivers: bad input gets a clear log line and a
# counter, never a crash, never a delayed client response, never a lost
# event.
#
# Hostile upstream documents, each checked for: the client gets the exact
# bytes, the right capture counter moves, the error log has no [alert],
# [crit] or crash (the same worker still serves), and a normal checkout
# right after still delivers.
# - a 100 MB chunked body (default postback_buffer_size 64k): too_large,
#   the client reads it whole (length and MD5, streamed);
# - arrays and objects nested 10000 deep: refused by the parser (malformed)
#   with a log line; 1500 deep with an event: delivered, the deep part
#   rendered into the callback body;
# - invalid UTF-8 in strings (0xff, an overlong form, an encoded surrogate,
#   a lone \ud800 escape): malformed, with the reason and where in the
#   log, logged as soon as the bytes are read;
# - valid JSON with \u0000 in a key: examined like any document, the key
#   sent with U+FFFD in the default body's "data";
# - a spaced document with a big integer: "data" is its text as sent;
# - a parse error whose text would carry a raw newline into the log: the
#   log line stays one line;
# - 100000 keys in one object (postback_buffer_size 4m): examined, a field
#   from the last keys extracted;
# - duplicate keys: the last one wins (event, fields and data agree);
# - CR LF, NUL and quotes in values going into header=, param= (get) and a
#   post_json body= template, and "evil.example.com", "@evil/x",
#   "//evil.example.com:81/x?y#z" in the url path: no injected header or
#   request at the receiver, the template body stays valid JSON with the
#   exact values, the host stays 127.0.0.1 and the values stay path
#   segments.
# Receiver faults (one attempt each, the client answered in < 0.5 s):
# accepts and never answers (timeout), half a status line then close,
# half a header then a reset, an answer byte by byte (delivered), 429 with
# Retry-After: 1 then 200 (retried after >= 1 s, delivered), a host name
# that does not resolve (failed fast with curl's resolve error).
# Zone pressure (postback_zone 64k, the receiver down, nothing finishes):
# deliveries are refused with an error-log line naming callback, event and
# fields, the callback's dropped counter moves, every client still gets
# 200 at once, and every event is either in the zone or in a drop line.

use strict;
use warnings;

use Digest::MD5;
use Encode ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(time sleep);

use PBTest;

my $JSON = JSON::PP->new->utf8->canonical;

my $t = PBTest->new;
my $dir = $t->dir;

# ---------------------------------------------------------------- documents

# 100 MB: a JSON document that would be valid if it were not so large.
my $HUGE_SIZE = 100 * 1024 * 1024;
my $HUGE_HEAD = '{"status":"APPROVED","tx":"HUGE","pad":"';
my $HUGE_TAIL = '"}';

# Built in place, so the upstream holds it once (the harness writes it out
# in 64k chunks).
sub huge_body {
    my $body = 'p' x $HUGE_SIZE;
    substr($body, 0, length $HUGE_HEAD) = $HUGE_HEAD;
    substr($body, -length $HUGE_TAIL) = $HUGE_TAIL;
    return $body;
}

# The MD5 of huge_body(), computed piece by piece.
sub huge_md5 {
    my $md5 = Digest::MD5->new;
    my $pad = $HUGE_SIZE - length($HUGE_HEAD) - length($HUGE_TAIL);
    my $block = 'p' x 65536;
    $md5->add($HUGE_HEAD);
    $md5->add($block) for 1 .. int($pad / 65536);
    $md5->add('p' x ($pad % 65536));
    $md5->add($HUGE_TAIL);
    return $md5->hexdigest;
}

my $DEPTH = 10_000;
my $OK_DEPTH = 1500;    # under jansson's parsing limit (2048)
my $MANY = 100_000;

# Values that try to break out of a header line, a JSON string or the url.
my %EVIL = (
    crlf    => "a\r\nX-Injected: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil.example.com\r\n\r\n",
    nul     => "b\x00X-Injected: 2",
    quote   => 'c"}, "evil": {"x": "\\',
    host    => 'evil.example.com',
    at      => '@evil/x',
    slashes => '//evil.example.com:81/x?y#z',
);

# The upstream and the test use the same bytes.
my %DOC = (
    deep_arrays  => ('[' x $DEPTH) . (']' x $DEPTH),
    deep_objects => ('{"a":' x $DEPTH) . '1' . ('}' x $DEPTH),
    deep_ok      => '{"status":"APPROVED","tx":"DEEP-OK","deep":'
                    . ('[' x $OK_DEPTH) . '"core"' . (']' x $OK_DEPTH) . '}',
    # raw bytes that are not UTF-8 inside a string
    utf8_ff        => qq({"status":"APPROVED","tx":"UTF-FF","name":"a\xffb"}),
    utf8_overlong  => qq({"status":"APPROVED","tx":"UTF-OL","name":"\xc0\xaf"}),
    utf8_surrogate => qq({"status":"APPROVED","tx":"UTF-SUR","name":"\xed\xa0\x80"}),
    utf8_escape    => '{"status":"APPROVED","tx":"UTF-ESC","name":"\ud800"}',
    # RFC 8259 allows any code point in a key
    nul_key => '{"status":"APPROVED","tx":"NUL-KEY","a\u0000b":1}',
    # the default body's "data" is the document as sent, spacing and all
    spaced => qq(\n  {"status": "APPROVED",\n   "tx": "SPACED", "n": 123456789012345678901234567890}\n\n),
    # a backslash, then a raw newline: jansson's error text ends with both
    log_forge => qq({"status":"APPROVED","note":"forged\\\n"}),
    many => '{' . join(',', map { qq("k$_":$_) } 0 .. $MANY - 1)
            . ',"status":"APPROVED","tx":"MANY"}',
    dup_approved => '{"status":"DECLINED","tx":"DUP-1","status":"APPROVED"}',
    dup_declined => '{"status":"APPROVED","tx":"DUP-2","status":"DECLINED"}',
    inject => $JSON->encode({ status => 'APPROVED', tx => 'INJ', %EVIL }),
);

sub plain_doc { qq({"status":"APPROVED","tx":"$_[0]"}) }

# 2 KB more, all of it in the delivery's "data": fills a zone sooner
sub padded_doc { qq({"status":"APPROVED","tx":"$_[0]","pad":") . ('p' x 2048) . '"}' }

# ---------------------------------------------------------------- servers

# Answers by the last path segment: a document of %DOC, "plain" or
# "padded" (a normal checkout, tx from the query) or the 100 MB one.
$t->upstream(app => sub {
    my ($req) = @_;
    my ($name) = $req->{path} =~ m{([^/]+)$};
    my @type = ('Content-Type' => 'application/json');
    if ($name eq 'huge') {
        # chunked: no Content-Length, so the size is only known by counting
        return { headers => \@type, body => huge_body(), chunked => 1, chunk_size => 65536 };
    }
    my $tx = $req->{args}{tx} // '';
    my $body = $name eq 'plain'  ? plain_doc($tx)
             : $name eq 'padded' ? padded_doc($tx)
             :                     $DOC{$name};
    return { status => 404, body => "no document $name" } unless defined $body;
    return { headers => \@type, body => $body };
});

$t->receiver('hook');
$t->receiver('many');
$t->receiver('inject');
# 429 with Retry-After: 1 first, then 200
$t->receiver(busy => respond => sub {
    my ($req, $n) = @_;
    return $n == 1 ? { status => 429, headers => [ 'Retry-After' => '1' ], body => 'slow down' }
                   : { status => 200, body => 'ok' };
});

# Receivers the harness cannot play, each a forked child on $t->port($name)
# that serves one connection at a time with $serve->($sock) and notes each
# connection in a file.  $serve returns true to keep the connection open.
my @RAW_PIDS;
my $MAIN_PID = $$;

sub raw_receiver {
    my ($name, $serve) = @_;
    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $t->port($name), Proto => 'tcp',
        Listen => 16, ReuseAddr => 1,
    ) or die "raw receiver $name: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        # never back into the test's code: the eval ends in _exit
        eval {
            $SIG{PIPE} = 'IGNORE';
            open STDOUT, '>', '/dev/null';
            my @held;
            my $sel = IO::Select->new($listen);
            # until the test process goes away
            while (getppid() == $MAIN_PID) {
                next unless $sel->can_read(0.2);
                my $conn = $listen->accept or next;
                open my $fh, '>>', "$dir/raw.$name" or die "raw.$name: $!\n";
                print $fh time, "\n";
                close $fh;
                my $keep = eval { $serve->($conn) };
                push @held, $conn if $keep;
            }
        };
        POSIX::_exit(0);
    }
    close $listen;
    push @RAW_PIDS, $pid;
}

sub raw_connections {
    my ($name) = @_;
    open my $fh, '<', "$dir/raw.$name" or return 0;
    my @lines = <$fh>;
    return scalar @lines;
}

sub read_request {
    my ($sock) = @_;
    return PBTest::HTTP->new($sock, timeout => 5)->read_request;
}

# accepts and never reads nor answers
raw_receiver(silent => sub { 1 });
# half a status line, then a clean close
raw_receiver(halfline => sub {
    my ($sock) = @_;
    read_request($sock);
    PBTest::HTTP::write_all($sock, 'HTTP/1.1 2');
    close $sock;
    return 0;
});
# the status line and half a header, then a reset (RST: linger 0), late
# enough that curl has read what came before it
raw_receiver(reset => sub {
    my ($sock) = @_;
    read_request($sock);
    PBTest::HTTP::write_all($sock, "HTTP/1.1 200 OK\r\nContent-Type: text/pl");
    sleep 0.2;
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $sock;
    return 0;
});
# the whole answer one byte at a time, 15 ms apart (about 1 s in all)
my $TRICKLE = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntrickle";
raw_receiver(trickle => sub {
    my ($sock) = @_;
    read_request($sock);
    for my $byte (split //, $TRICKLE) {
        PBTest::HTTP::write_all($sock, $byte);
        sleep 0.015;
    }
    close $sock;
    return 0;
});

END {
    local $?;    # waitpid must not change the test's exit code
    if ($$ == $MAIN_PID) {
        kill 'KILL', @RAW_PIDS;
        waitpid $_, 0 for @RAW_PIDS;
    }
}

# ---------------------------------------------------------------- nginx

# Receiver faults: one location and one callback each.
my %FAULT = (
    silent   => 'url=http://127.0.0.1:%%PORT_silent%%/hook attempts=1 timeout=1s',
    halfline => 'url=http://127.0.0.1:%%PORT_halfline%%/hook attempts=1 timeout=3s',
    reset    => 'url=http://127.0.0.1:%%PORT_reset%%/hook attempts=1 timeout=3s',
    trickle  => 'url=http://127.0.0.1:%%PORT_trickle%%/hook attempts=1 timeout=5s',
    busy     => 'url=http://127.0.0.1:%%PORT_busy%%/hook attempts=3 retry=1s',
    nohost   => 'url=http://no-such-host.invalid/hook attempts=1',
);
my @FAULTS = sort keys %FAULT;
my $fault_locations = join '', map { <<"EOF" } @FAULTS;
        location /fault/$_/ {
            postback on;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback $_ $FAULT{$_};
        }
EOF

my $common = $t->http_common;
# A single-quoted here-document: nginx variables stay as they are.
my $conf = <<'EOF';
load_module %%MODULE%%;
worker_processes 1;
events {}
http {
@COMMON@
    postback_zone pb:16m;

    postback_field status  $.status;
    postback_field tx      $.tx;
    postback_field deep    $.deep;
    postback_field far     $.k99999;
    postback_field crlf    $.crlf;
    postback_field nul     $.nul;
    postback_field quote   $.quote;
    postback_field host    $.host;
    postback_field at      $.at;
    postback_field slashes $.slashes;
    postback_event $postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;

        # normal checkouts and most hostile documents (default buffer: 64k)
        location /app/ {
            postback on;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback hook url=http://127.0.0.1:%%PORT_hook%%/hook
                "header=X-Tx: $postback_tx";
        }

        location /many/ {
            postback on;
            postback_buffer_size 4m;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback many url=http://127.0.0.1:%%PORT_many%%/many
                'body={"tx":"$postback_tx","far":"$postback_far"}';
        }

        location /inject/ {
            postback on;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            postback_callback inj_hdr
                url=http://127.0.0.1:%%PORT_inject%%/hdr/$postback_host/$postback_at/$postback_slashes
                "header=X-Crlf: $postback_crlf"
                "header=X-Nul: $postback_nul"
                "header=X-Quote: $postback_quote";
            postback_callback inj_get method=get
                url=http://127.0.0.1:%%PORT_inject%%/get/$postback_at?fixed=1
                param=crlf=$postback_crlf param=nul=$postback_nul
                param=quote=$postback_quote param=host=$postback_host;
            postback_callback inj_tpl
                url=http://127.0.0.1:%%PORT_inject%%/tpl/$postback_slashes
                'body={"crlf":"$postback_crlf","nul":"$postback_nul","quote":"$postback_quote","at":"$postback_at"}';
        }

@FAULTS@
        location /status { postback_status; }
    }
}
EOF
$conf =~ s/\@COMMON\@/$common/;
$conf =~ s/\@FAULTS\@/$fault_locations/;
$t->nginx_conf($conf);
$t->start;

# ---------------------------------------------------------------- helpers

sub counted { $t->counted('/status', @_) }

sub status {
    my $r = $t->get('/status?limit=1000');
    die "status page: " . ($r->{status} // $r->{error}) . "\n" unless ($r->{status} // 0) == 200;
    return $JSON->decode($r->{body});
}

sub callback_status {
    my ($st, $name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ $st->{callbacks} };
    return $cb // {};
}

sub delivery_of {
    my ($st, $name) = @_;
    my ($d) = grep { $_->{callback} eq $name } @{ $st->{deliveries} };
    return $d // {};
}

# Polls the status page until $cond->($st) holds (10 s at most).
sub wait_status {
    my ($cond) = @_;
    my $deadline = time + 10;
    while (1) {
        my $st = status();
        return $st if $cond->($st) || time > $deadline;
        sleep 0.05;
    }
}

# The record of receiver "hook" for transaction $tx (header X-Tx), or undef
# after 5 s.
sub hook_for {
    my ($tx) = @_;
    my $deadline = time + 5;
    while (1) {
        my ($rec) = grep { ($_->{headers}{'x-tx'} // '') eq $tx } @{ $t->received('hook') };
        return $rec if $rec || time > $deadline;
        sleep 0.05;
    }
}

# The error log from byte $from on.
sub log_since { substr $t->error_log, $_[0] }

# After a hostile case: no [alert], [crit] or crash in the log since $from,
# the same worker still serving, and a normal checkout still delivering.
my $normal = 0;
sub still_fine {
    my ($name, $from, $workers) = @_;
    my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal/ } split /\n/, log_since($from);
    ok !@bad, "$name: no alert, crit or crash in the error log" or diag join "\n", @bad;
    is_deeply [ $t->worker_pids ], $workers, "$name: the same worker still serves";
    my $tx = 'NORMAL-' . ++$normal;
    my $r = $t->get("/app/plain?tx=$tx");
    is $r->{status}, 200, "$name: a normal checkout afterwards answered";
    ok hook_for($tx), "$name: ... and delivered";
}

# GET $path on the front port, the body read as it arrives (chunked
# decoded) and only its length and MD5 kept.
sub stream_get {
    my ($path) = @_;
    my %res = (length => 0, error => '');
    my $start = time;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port('front'))
        or die "connect: $!\n";
    PBTest::HTTP::write_all($sock, "GET $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    my $buf = '';
    my $deadline = time + 60;
    my $more = sub {
        die "timeout\n" if time > $deadline;
        my $n = sysread $sock, $buf, 1 << 20, length $buf;
        die "read error: $!\n" unless defined $n;
        die "connection closed\n" unless $n;
    };
    my $md5 = Digest::MD5->new;
    eval {
        $more->() while index($buf, "\r\n\r\n") < 0;
        my $head = substr $buf, 0, index($buf, "\r\n\r\n") + 4, '';
        ($res{status}) = $head =~ m{^HTTP/1\.\d (\d{3})};
        $res{chunked} = $head =~ /^Transfer-Encoding: chunked\r$/mi ? 1 : 0;
        die "not chunked\n" unless $res{chunked};
        while (1) {
            $more->() while index($buf, "\r\n") < 0;
            $buf =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or die "bad chunk size line\n";
            my $size = hex $1;
            last if $size == 0;
            while ($size > 0) {
                $more->() unless length $buf;
                my $piece = substr $buf, 0, ($size < length $buf ? $size : length $buf), '';
                $md5->add($piece);
                $res{length} += length $piece;
                $size -= length $piece;
            }
            $more->() while length $buf < 2;
            substr($buf, 0, 2, '') eq "\r\n" or die "bad chunk end\n";
        }
        1;
    } or chomp($res{error} = $@);
    close $sock;
    $res{md5} = $md5->hexdigest;
    $res{elapsed} = time - $start;
    return \%res;
}

# Runs a GET of /app/$doc (or $path); checks status, exact bytes and the
# client's time; returns the counters that moved.
sub get_doc {
    my ($name, $doc, $path) = @_;
    my ($r, $delta) = counted(sub { $t->get($path // "/app/$doc") });
    is $r->{status}, 200, "$name: status";
    ok !$r->{error} && $r->{body} eq $DOC{$doc}, "$name: client got the upstream's exact bytes"
        or diag(($r->{error} // '') . " got " . length($r->{body}) . " bytes");
    cmp_ok $r->{elapsed}, '<', 0.5, "$name: answered at once";
    return $delta;
}

my @workers = $t->worker_pids;

# ---------------------------------------------------------------- hostile input

subtest '100 MB chunked body' => sub {
    my $from = length $t->error_log;
    my ($r, $delta) = counted(sub { stream_get('/app/huge') });
    is $r->{status}, 200, 'status';
    is $r->{error}, '', 'read to the last chunk';
    is $r->{length}, $HUGE_SIZE, 'client got 100 MB';
    is $r->{md5}, huge_md5(), '... the upstream bytes (MD5)';
    is_deeply $delta, { examined => 1, too_large => 1 }, 'counted too_large';
    like log_since($from), qr/postback: response is over postback_buffer_size 65536, not examined/,
        'log line';
    still_fine('100 MB', $from, \@workers);
};

subtest 'nested 10000 deep' => sub {
    for my $doc (qw(deep_arrays deep_objects)) {
        my $from = length $t->error_log;
        my $delta = get_doc($doc, $doc);
        # either outcome is sane; jansson stops at depth 2048
        ok eq_hash($delta, { examined => 1, malformed => 1 })
            || eq_hash($delta, { examined => 1, no_event => 1 }),
            "$doc: counted malformed or no_event" or diag explain $delta;
        like log_since($from), qr/postback: response is not valid JSON: maximum parsing depth reached/,
            "$doc: log line" if $delta->{malformed};
        still_fine($doc, $from, \@workers);
    }

    # Under the limit, with an event: the deep part goes through JSONPath
    # (field "deep") and into the default body's "data".
    my $from = length $t->error_log;
    my $delta = get_doc("$OK_DEPTH deep", 'deep_ok');
    is_deeply $delta, { examined => 1, events => 1 }, "$OK_DEPTH deep: examined, with an event";
    my $rec = hook_for('DEEP-OK');
    ok $rec, "$OK_DEPTH deep: delivered";
    my $body = $rec ? $rec->{body} : '';
    # (compared as text: JSON::PP warns about recursion this deep)
    ok index($body, qq("data":$DOC{deep_ok})) >= 0, "$OK_DEPTH deep: data is the document";
    my $deep = ('[' x $OK_DEPTH) . '\"core\"' . (']' x $OK_DEPTH);
    ok index($body, qq("deep":"$deep")) >= 0, "$OK_DEPTH deep: the field as compact JSON text";
    still_fine("$OK_DEPTH deep", $from, \@workers);
};

subtest 'invalid UTF-8 in strings' => sub {
    my %reason = (
        utf8_ff        => qr/invalid UTF-8 at byte 44/,
        utf8_overlong  => qr/invalid UTF-8 at byte 43/,
        utf8_surrogate => qr/invalid UTF-8 at byte 45/,
        utf8_escape    => qr/invalid Unicode surrogate at byte 50/,
    );
    for my $doc (sort keys %reason) {
        my $from = length $t->error_log;
        my $delta = get_doc($doc, $doc);
        is_deeply $delta, { examined => 1, malformed => 1 }, "$doc: counted malformed";
        like log_since($from), qr/postback: response is not valid JSON: $reason{$doc}/,
            "$doc: log line with the reason";
        still_fine($doc, $from, \@workers);
    }
};

# Valid JSON (RFC 8259 allows any code point in a key), as the NUL inside a
# string that t/02 checks: the other members are usable, so the event counts.
subtest '\u0000 in a key' => sub {
    my $from = length $t->error_log;
    my $delta = get_doc('NUL in a key', 'nul_key');
    is_deeply $delta, { examined => 1, events => 1 }, 'examined, with an event'
        or diag log_since($from);
    my $hook = hook_for('NUL-KEY');
    ok $delta->{events} && $hook, 'delivered';
    my $body = $hook && eval { decode_json($hook->{body}) };
    is $body && $body->{data}{"a\x{FFFD}b"}, 1,
        'its key written again with U+FFFD, which receivers accept';
    still_fine('NUL in a key', $from, \@workers);
};

subtest 'the document as sent' => sub {
    my $from = length $t->error_log;
    get_doc('spaced', 'spaced');
    my $hook = hook_for('SPACED');
    like $hook && $hook->{body},
        qr/,"data":\{"status": "APPROVED",\n   "tx": "SPACED", "n": 123456789012345678901234567890\}\}\z/,
        'in the default body as the upstream wrote it, without the space around';
    still_fine('spaced', $from, \@workers);
};

# A parse error's log line stays one line, whatever bytes are near it.
subtest 'parse error text with a newline' => sub {
    my $from = length $t->error_log;
    my $delta = get_doc('parse error', 'log_forge');
    is_deeply $delta, { examined => 1, malformed => 1 }, 'counted malformed';
    my $log = log_since($from);
    like $log, qr/postback: response is not valid JSON: invalid escape/, 'log line';
    like $log, qr/postback: response is not valid JSON: [^\n]* at byte \d+/,
        'the whole message on one line' or diag $log;
    still_fine('parse error', $from, \@workers);
};

subtest '100000 keys' => sub {
    cmp_ok length $DOC{many}, '>', 1_000_000, 'a document of over 1 MB';
    my $from = length $t->error_log;
    my ($r, $delta) = counted(sub { $t->get('/many/many') });
    is $r->{status}, 200, 'status';
    ok $r->{body} eq $DOC{many}, "client got the upstream's exact bytes";
    cmp_ok $r->{elapsed}, '<', 1, 'answered at once';
    is_deeply $delta, { examined => 1, events => 1 }, 'examined, with an event';
    my ($rec) = @{ $t->wait_received(many => 1) };
    is_deeply eval { $JSON->decode($rec->{body}) }, { tx => 'MANY', far => $MANY - 1 },
        'fields from the end of the object';
    still_fine('100000 keys', $from, \@workers);
};

# What we see: jansson keeps the last of duplicate keys, and everything
# (event, field, data) uses that one value.
subtest 'duplicate keys: the last one wins' => sub {
    for my $case ([ dup_approved => 'DUP-1', 'APPROVED' ], [ dup_declined => 'DUP-2', 'DECLINED' ]) {
        my ($doc, $tx, $last) = @$case;
        my $from = length $t->error_log;
        my $delta = get_doc($doc, $doc);
        is_deeply $delta, { examined => 1, events => 1 }, "$doc: examined, with an event";
        my $rec = hook_for($tx);
        my $body = $rec ? eval { $JSON->decode($rec->{body}) } // {} : {};
        is $body->{event}, $last, "$doc: event from the last \"status\"";
        is $body->{fields}{status}, $last, "$doc: field from the last \"status\"";
        is_deeply $body->{data}, { status => $last, tx => $tx }, "$doc: data has the last one only";
        still_fine($doc, $from, \@workers);
    }
};

subtest 'CR LF, NUL, quotes and hosts in header=, param=, body= and the url' => sub {
    my $from = length $t->error_log;
    my $delta = get_doc('injection', 'inject', '/inject/inject');
    cmp_ok delete $delta->{sanitized} // 0, '>', 0, 'header values sanitized, counted';
    is_deeply $delta, { examined => 1, events => 1 }, 'examined, with an event';

    my $recs = $t->wait_received(inject => 3);
    # anything smuggled would arrive as a request of its own
    sleep 0.3;
    $recs = $t->received('inject');
    is scalar @$recs, 3, 'three requests arrived, no more';
    my %by = map { (split m{/}, $_->{path})[1] => $_ } @$recs;
    is_deeply [ sort keys %by ], [qw(get hdr tpl)], 'one per callback';
    my $host = '127.0.0.1:' . $t->port('inject');
    for my $rec (@$recs) {
        my $what = (split m{/}, $rec->{path})[1];
        is $rec->{headers}{host}, $host, "$what: Host is the configured one";
        ok !grep({ /^x-injected$|^get /i } keys %{ $rec->{headers} }), "$what: no injected header";
    }

    # url: each value one percent-encoded path segment
    my $hdr = $by{hdr} // {};
    my @segments = map { PBTest::HTTP::url_decode($_) } split m{/}, $hdr->{path} // '', -1;
    is_deeply \@segments, [ '', 'hdr', @EVIL{qw(host at slashes)} ],
        'url: the values stay path segments' or diag $hdr->{uri};
    is $hdr->{query}, '', 'url: no query made from "?" in a value';

    # header=: CR, LF and NUL became spaces, the rest is kept
    (my $crlf = $EVIL{crlf}) =~ tr/\r\n\0/   /;
    (my $nul = $EVIL{nul}) =~ tr/\r\n\0/   /;
    is $hdr->{headers}{'x-crlf'}, $crlf =~ s/^\s+|\s+$//gr, 'header=: CR LF replaced';
    is $hdr->{headers}{'x-nul'}, $nul, 'header=: NUL replaced';
    is $hdr->{headers}{'x-quote'}, $EVIL{quote}, 'header=: quotes and backslash kept';

    # param= with method=get: each value arrives intact
    my $get = $by{get} // {};
    is PBTest::HTTP::url_decode($get->{path} // ''), "/get/$EVIL{at}", 'get: path';
    is_deeply $get->{args}, { fixed => 1, map { $_ => $EVIL{$_} } qw(crlf nul quote host) },
        'get: params intact, the fixed one kept';

    # body= with post_json: valid JSON with the exact values
    my $tpl = $by{tpl} // {};
    my $doc = eval { JSON::PP->new->decode(Encode::decode('UTF-8', $tpl->{body}, Encode::FB_CROAK)) };
    ok $doc, 'body=: valid UTF-8 JSON' or diag $tpl->{body};
    is_deeply $doc, { map { $_ => $EVIL{$_} } qw(crlf nul quote at) },
        'body=: exactly the template\'s members, values intact';
    is PBTest::HTTP::url_decode($tpl->{path} // ''), "/tpl/$EVIL{slashes}", 'body=: path';

    still_fine('injection', $from, \@workers);
};

# ---------------------------------------------------------------- receiver faults

subtest 'receiver faults' => sub {
    my $from = length $t->error_log;
    for my $name (@FAULTS) {
        my $r = $t->get("/fault/$name/plain?tx=F-$name");
        is $r->{status}, 200, "$name: checkout answered";
        cmp_ok $r->{elapsed}, '<', 0.5, "$name: at once";
    }
    my $st = wait_status(sub {
        my ($st) = @_;
        !grep { my $cb = callback_status($st, $_); ($cb->{delivered} // 0) + ($cb->{failed} // 0) < 1 }
            @FAULTS;
    });
    my %d = map { $_ => delivery_of($st, $_) } @FAULTS;
    my %a = map { $_ => $d{$_}{attempts}[0] // {} } @FAULTS;

    is $d{silent}{state}, 'failed', 'never answers: failed';
    like $a{silent}{error}, qr/timed out/i, '... with a timeout error';
    cmp_ok $a{silent}{duration_ms}, '>=', 950, '... after about 1 s';
    cmp_ok $a{silent}{duration_ms}, '<', 2500, '... not much more';
    is raw_connections('silent'), 1, '... one connection';

    for my $name (qw(halfline reset)) {
        is $d{$name}{state}, 'failed', "$name: failed";
        isnt $a{$name}{error} // '', '', "$name: curl's error recorded";
        is raw_connections($name), 1, "$name: one attempt";
    }
    is $a{halfline}{status}, 0, 'half a status line: no status';
    # the status line had arrived: its 200 is recorded, the attempt failed
    is $a{reset}{status}, 200, 'reset after the status line: its status kept';
    like $a{reset}{error}, qr/reset/i, '... and the reset named';

    is $d{trickle}{state}, 'delivered', 'byte by byte: delivered';
    is $a{trickle}{response}, 'trickle', '... the whole answer';
    cmp_ok $a{trickle}{duration_ms}, '>=', 500, '... read as it came';

    is $d{busy}{state}, 'delivered', '429 then 200: delivered';
    is_deeply [ map { $_->{status} } @{ $d{busy}{attempts} } ], [ 429, 200 ], '... in two attempts';
    my $busy = $t->received('busy');
    my $gap = @$busy == 2 ? $busy->[1]{time} - $busy->[0]{time} : 0;
    # retry=1s alone may come after 0.8 s (jitter): Retry-After: 1 is a floor
    ok $gap >= 0.95 && $gap < 2.5, sprintf '... Retry-After: 1 honoured (%.2f s)', $gap;
    is $busy->[1]{headers}{'webhook-id'}, $busy->[0]{headers}{'webhook-id'}, '... same webhook-id';

    is $d{nohost}{state}, 'failed', 'unresolvable host: failed';
    like $a{nohost}{error}, qr/resolve/i, "... with curl's resolve error";
    cmp_ok $a{nohost}{duration_ms}, '<', 3000, '... fast';

    is_deeply [ map { callback_status($st, $_)->{attempts} } @FAULTS ],
        [ map { $_ eq 'busy' ? 2 : 1 } @FAULTS ], 'attempts per callback';
    still_fine('receiver faults', $from, \@workers);
};

$t->stop;

# ---------------------------------------------------------------- zone pressure

# A small zone and a receiver that is down: every delivery stays pending
# (a retry in 10 s, 100 attempts), so nothing can be evicted.
$t->port('closed');    # nothing listens there
$conf = <<'EOF';
load_module %%MODULE%%;
worker_processes 1;
events {}
http {
@COMMON@
    postback_zone small:64k;
    postback_field status $.status;
    postback_field tx     $.tx;
    postback_event $postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;
        location /zone/ {
            postback on;
            proxy_pass http://127.0.0.1:%%PORT_app%%;
            # tx in the url, so the status page shows which events it holds
            postback_callback down url=http://127.0.0.1:%%PORT_closed%%/z/$postback_tx
                attempts=100 retry=10s;
        }
        location /status { postback_status; }
    }
}
EOF
$conf =~ s/\@COMMON\@/$common/;
$t->nginx_conf($conf);
$t->start;

subtest 'a full zone' => sub {
    my (@slow, @bad, $sent);
    my $drops = 0;
    # until the zone refuses, then 20 more
    for my $i (1 .. 2000) {
        my $r = $t->get("/zone/padded?tx=Z$i");
        $sent = $i;
        push @bad, "Z$i: " . ($r->{status} // $r->{error}) unless ($r->{status} // 0) == 200;
        push @slow, sprintf 'Z%d: %.3f s', $i, $r->{elapsed} if $r->{elapsed} >= 0.5;
        $drops++ if $drops || $t->error_log =~ /zone full/;
        last if $drops > 20;
    }
    ok $drops, "the zone refused deliveries after $sent checkouts";
    is_deeply \@bad, [], 'every client got 200';
    is_deeply \@slow, [], 'every client answered in < 0.5 s';

    # every event is accounted for once the first attempts are recorded
    my $st = wait_status(sub {
        my $cb = callback_status($_[0], 'down');
        ($cb->{events} // 0) == $sent && ($cb->{pending} // 0) + ($cb->{dropped} // 0) == $sent;
    });
    my $cb = callback_status($st, 'down');

    # The event's work comes after the client's last bytes, and the drop is
    # counted just before it is logged: wait for the last line.
    my @lines;
    my $deadline = time + 3;
    until (@lines >= $cb->{dropped} || time > $deadline) {
        sleep 0.05 if @lines;
        @lines = grep { /delivery dropped/ } split /\n/, $t->error_log;
    }
    like $lines[0] // '',
        qr/\[error\].*postback: delivery dropped, zone full: callback "down", event "APPROVED", fields: status="APPROVED" tx="Z\d+"/,
        'error log line naming callback, event and fields';
    cmp_ok $cb->{dropped}, '>', 0, 'status page: dropped counter';
    is $cb->{events}, $sent, 'status page: every checkout made an event';
    is $cb->{pending} + $cb->{dropped}, $sent, 'each one pending or dropped';
    is_deeply [ @$cb{qw(delivered failed)} ], [ 0, 0 ], 'none finished';
    is scalar @lines, $cb->{dropped}, 'one log line per drop';

    my %dropped = map { /tx="(Z\d+)"/ ? ($1 => 1) : () } @lines;
    my %held = map { $_->{url} =~ m{/z/(Z\d+)$} ? ($1 => 1) : () } @{ $st->{deliveries} };
    my @lost = grep { !$dropped{$_} && !$held{$_} } map { "Z$_" } 1 .. $sent;
    my @both = grep { $dropped{$_} } keys %held;
    is_deeply \@lost, [], 'no event lost: each one in the zone or in a drop line';
    is_deeply \@both, [], '... not both';
};

$t->stop;
done_testing;
