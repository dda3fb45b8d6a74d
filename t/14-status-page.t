# The status page in a real browser (headless chromium via chromedriver):
# the page served by the status location renders the JSON it fetches (zone
# summary, callbacks, deliveries), a failed delivery's cells and its detail
# (request line, headers, body, attempts), the Retry button (the delivery
# goes out again, the row turns delivered, the detail shows the manual
# attempt), the Disable/Enable buttons, the Send test form (the event
# picked from events= or typed, the fields' values from postback_sample's
# document, edited; the form kept through re-renders; the receiver gets
# the sample document with the event and the values chosen), the callback
# and state filters, the search box (q=), auto refresh and the Refresh
# button.  Hostile values (an event
# name that is an <img onerror=...> tag, a field that closes the <pre> and
# opens a <script>) show as literal text and never become elements: no
# script of theirs runs.  The last hour's chart of each callback: the
# status JSON's per-minute series (last_hour) count the attempts, and the
# page draws them as SVG bars built with DOM calls, one a minute, their
# counts and heights those of the JSON.  A screenshot of the whole page
# after the retry is saved as build/artifacts/status-page.png.

use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use JSON::PP;
use PBBrowser;
use PBTest qw(url eventually);

plan skip_all => 'no chromium/chromedriver (apt-get install chromium '
               . 'chromium-driver; make test installs them)'
    unless PBBrowser->available;

my $EVIL_EVENT = q{<img src=x onerror="document.title='pwned';window.pwned=1">};
my $EVIL_TX = q{</pre><script>document.title='pwned';window.pwned=1</script>};
my $TITLE = 'postback status';

my $t = PBTest->new;
my $json = JSON::PP->new->canonical;

# The checkout: a JSON document built from the (decoded) query arguments,
# so that any bytes, quotes and angle brackets included, reach the fields.
$t->upstream(app => sub {
    my ($req) = @_;
    my $a = $req->{args};
    return { headers => ['Content-Type' => 'application/json'],
             body => $json->encode({ data => {
                 status => $a->{status} // '', tx => $a->{tx} // '',
                 product => { id => $a->{product} // '' } } }) };
});
$t->receiver('members');
# the tracker fails its first two requests, then accepts
$t->receiver(tracker => fail_first => 2);

# what test sends render
my $SAMPLE = { note => 'from the sample',
               data => { status => 'COMPLETE', tx => 'HP-SAMPLE',
                         product => { id => 1234 } } };
$t->write_file('sample.json', $json->encode($SAMPLE));

$t->nginx_conf($t->module_conf(<<"EOF"));
    postback_zone pb:1m;
    postback_field status \$.data.status;
    postback_field tx \$.data.tx;
    postback_field product \$.data.product.id;
    postback_event \$postback_status;
    postback_sample sample.json;

    server {
        listen 127.0.0.1:%%PORT_front%%;

        location /buy/ {
            proxy_pass http://127.0.0.1:%%PORT_app%%/doc/;
            postback on;
            postback_callback members
                url=http://127.0.0.1:%%PORT_members%%/hook;
            postback_callback tracker
                url=http://127.0.0.1:%%PORT_tracker%%/pb
                events=APPROVED attempts=2 retry=1s;
        }
        location /status/ {
            postback_status;
        }
    }
EOF
$t->start;

my $front = 'http://127.0.0.1:' . $t->port('front');

sub status {
    my (%q) = @_;
    my $r = $t->get(url('/status/', format => 'json', %q));
    die "status: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    return $json->decode($r->{body});
}

# the first event: the tracker fails it twice (1 s apart), members takes it
is $t->get(url('/buy/a', status => 'APPROVED', tx => 'T1', product => 7))
    ->{status}, 200, 'checkout answered';
# the second, for members only (events= of the tracker): hostile values
is $t->get(url('/buy/h', status => $EVIL_EVENT, tx => $EVIL_TX, product => 8))
    ->{status}, 200, 'a checkout with hostile values answered';

# chromium starts meanwhile
my $b = PBBrowser->new(dir => $t->dir, port => $t->port('chromedriver'));

my ($failed, @members, $evil);
ok eventually(sub {
    ($failed) = @{ status(callback => 'tracker')->{deliveries} };
    @members = @{ status(callback => 'members')->{deliveries} };
    ($evil) = grep { $_->{event} eq $EVIL_EVENT } @members;
    $failed && $failed->{state} eq 'failed' && $evil
        && 2 == grep { $_->{state} eq 'delivered' } @members;
}, 10), 'the tracker delivery failed, the two to members were delivered'
    or die "no failed delivery to look at: nothing more to test\n";
my $ID = $failed->{id};

# ---------------------------------------------------------------- helpers

sub js { $b->script(@_) }

# A row's cells and class at one instant (the page re-renders its tables),
# or undef when the row is not there.
sub row {
    my ($id) = @_;
    return js(<<'JS', $id);
var tr = document.querySelector('#deliveries tr.delivery[data-id="'
                                + CSS.escape(arguments[0]) + '"]');
if (!tr) { return null; }
var r = { class: tr.className };
['time', 'callback', 'event', 'state', 'attempts', 'last'].forEach(function (c) {
  var td = tr.querySelector('td.' + c);
  r[c] = td ? td.textContent : null;
});
r.retry = !!tr.querySelector('button.retry');
var next = tr.nextElementSibling;
r.detail_next = !!(next && next.matches('tr.detail[data-for="'
                                        + CSS.escape(arguments[0]) + '"]'));
return r;
JS
}

# The detail of a delivery once loaded, else undef.
sub detail {
    my ($id) = @_;
    return js(<<'JS', $id);
var tr = document.querySelector('#deliveries tr.detail[data-for="'
                                + CSS.escape(arguments[0]) + '"]');
if (!tr || !tr.querySelector('pre.request-line')) { return null; }
function text(css) { var e = tr.querySelector(css); return e ? e.textContent : null; }
return {
  line: text('pre.request-line'), headers: text('pre.request-headers'),
  body: text('pre.request-body'),
  attempts: Array.prototype.map.call(tr.querySelectorAll('ol.attempts > li.attempt'),
    function (li) {
      var s = li.querySelector('.summary');
      return { class: li.className, summary: s ? s.textContent : null };
    })
};
JS
}

sub callback_row {
    my ($name) = @_;
    return js(<<'JS', $name);
var tr = document.querySelector('#callbacks tbody tr[data-callback="'
                                + CSS.escape(arguments[0]) + '"]');
if (!tr) { return null; }
var r = { class: tr.className };
['name', 'state', 'url', 'engine', 'last'].forEach(function (c) {
  var td = tr.querySelector('td.' + c);
  r[c] = td ? td.textContent : null;
});
r.nums = Array.prototype.map.call(tr.querySelectorAll('td.num'),
                                  function (td) { return td.textContent; });
['test', 'toggle', 'retry-failed', 'retry-paused'].forEach(function (c) {
  var b = tr.querySelector('button.' + c);
  r[c.replace('-', '_')] = b ? b.textContent : null;
});
return r;
JS
}

# A callback's chart as drawn: its SVG's parts and each minute's bars.
sub chart {
    my ($name) = @_;
    return js(<<'JS', $name);
var fig = document.querySelector('#charts figure.chart[data-callback="'
                                 + CSS.escape(arguments[0]) + '"]');
var s = fig && fig.querySelector('svg');
if (!s) { return null; }
function bars(cls, f) {
  return Array.prototype.map.call(s.querySelectorAll('g.minute > rect.' + cls), f);
}
function count(r) { return Number(r.getAttribute('data-count')); }
function height(r) { return r.height.baseVal.value; }
return {
  svg: s.namespaceURI, role: s.getAttribute('role'),
  rects_svg: Array.prototype.every.call(s.querySelectorAll('rect'),
    function (r) { return r instanceof SVGRectElement; }),
  title: s.querySelector(':scope > title').textContent,
  caption: fig.querySelector('figcaption').textContent,
  shown: s.getBoundingClientRect().width > 0,
  delivered: bars('delivered', count), failed: bars('failed', count),
  up: bars('delivered', height), down: bars('failed', height),
  tips: Array.prototype.map.call(s.querySelectorAll('g.minute > title'),
    function (t) { return t.textContent; })
};
JS
}

sub message {
    return js(q{var m = document.getElementById('message');
                return { text: m.textContent, class: m.className };});
}

sub ids_shown {
    return js(q{return Array.prototype.map.call(
        document.querySelectorAll('#deliveries tr.delivery'),
        function (tr) { return tr.dataset.id; });});
}

# Clicks the first element matching $css like a user (a WebDriver click);
# the page may replace the element between find and click: then again.
sub click_css {
    my ($css, $what) = @_;
    my $err = "no element $css";
    my $ok = $b->wait_until(sub {
        my $el = $b->find($css) or return 0;
        return 1 if eval { $b->click($el); 1 };
        $err = $@;
        return 0;
    }, 10);
    die "cannot click $what ($css): $err" unless $ok;
}

# Polls $cond (10 s at most); its last value, for messages.
sub wait_for_value {
    my ($cond) = @_;
    my $last;
    $b->wait_until(sub { $last = $cond->(); $last && $last->[0] }, 10);
    return $last;
}

sub row_css { qq{#deliveries tr.delivery[data-id="$_[0]"]} }

# Types $text into the element matching $css as a user would (WebDriver's
# element send keys), after clearing it; "\x{E007}" is the Enter key.
sub type_into {
    my ($css, $text) = @_;
    my $el = $b->wait_for($css, 10) or die "no element $css\n";
    $b->_cmd(POST => "/element/$el/clear", {});
    $b->_cmd(POST => "/element/$el/value", { text => $text });
}

# The test form of a callback: its event control and its fields' inputs.
sub test_form {
    my ($name) = @_;
    return js(<<'JS', $name);
var tr = document.querySelector('#callbacks tr.test-form[data-for="'
                                + CSS.escape(arguments[0]) + '"]');
if (!tr) { return null; }
var ev = tr.querySelector('.test-event');
var r = { event: ev.tagName.toLowerCase(), fields: {},
          options: Array.prototype.map.call(ev.querySelectorAll('option'),
                                            function (o) { return o.value; }),
          after: tr.previousElementSibling.dataset.callback };
tr.querySelectorAll('input.test-field').forEach(function (i) {
  r.fields[i.name] = i.value;
});
return r;
JS
}

# ---------------------------------------------------------------- the page

$b->get("$front/status/?format=html");
is js('return document.title'), $TITLE, 'the page loaded';
ok $b->wait_for(row_css($ID), 10), 'the failed delivery is listed';

like js(q{return document.getElementById('zone').textContent}),
    qr/^zone pb: \d+ of \d+ bytes used, \d+ deliveries kept, 0 evicted, 0 keys \(0 evicted\); \d+ responses examined, 2 events, 0 repeats not sent$/,
    'the zone summary';
is message()->{text}, '', 'no message yet';

my $cb = callback_row('tracker');
is $cb->{name}, 'tracker', 'callback row: tracker';
is $cb->{state}, 'enabled', '... enabled';
is $cb->{url}, 'http://127.0.0.1:' . $t->port('tracker'), '... its url';
is $cb->{engine}, 'nginx', '... the engine that sends to it';
is $cb->{last}, 'HTTP 500', '... its last answer';
is_deeply $cb->{nums}, [1, 0, 1, 0, 0, 0, 1],
    '... events, delivered, failed, pending, paused, dropped, failing in a row';
is $cb->{test}, 'Send test', '... a Send test button';
is $cb->{toggle}, 'Disable', '... a Disable button';
is $cb->{retry_failed}, 'Retry failed', '... a Retry failed button';
ok !$cb->{retry_paused}, '... no Retry paused: nothing is';
$cb = callback_row('members');
is $cb->{state}, 'enabled', 'callback row: members, enabled';
is $cb->{last}, 'HTTP 200', '... its last answer';

my $row = row($ID);
is $row->{class}, 'delivery failed', 'failed row: class';
is $row->{callback}, 'tracker', '... callback';
is $row->{event}, 'APPROVED', '... event';
is $row->{state}, 'failed', '... state';
is $row->{attempts}, '2', '... two attempts';
is $row->{last}, 'HTTP 500', '... last answer';
like $row->{time}, qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, '... time';
ok $row->{retry}, '... a Retry button';
ok !$row->{detail_next}, '... no detail yet';

# ---------------------------------------------------------------- hostile

$row = row($evil->{id});
ok $row, 'the delivery with hostile values is listed';
is $row->{event}, $EVIL_EVENT, '... the event name shown as text';
is $row->{state}, 'delivered', '... delivered';

click_css(row_css($evil->{id}), 'the hostile row');
my $d = wait_for_value(sub { [detail($evil->{id})] })->[0];
ok $d, 'its detail opened';
like $d && $d->{body}, qr/\Q"tx": "$EVIL_TX"\E/,
    '... the hostile field shown as text in the body';
my $evil_json = $EVIL_EVENT =~ s/"/\\"/gr;
like $d && $d->{body}, qr/\Q"event": "$evil_json"\E/,
    '... the hostile event too, JSON-escaped';
click_css(row_css($evil->{id}), 'the hostile row');
ok $b->wait_until(sub { my $r = row($evil->{id}); $r && !$r->{detail_next} }, 10),
    'a second click closes it';

is js(q{return document.querySelectorAll('img').length}), 0,
    'no img element in the page';
is js(q{return document.scripts.length}), 1, 'no script but the page\'s own';
is js('return document.title'), $TITLE, 'title unchanged';
ok !js('return window.pwned'), 'no injected handler ran';

# ---------------------------------------------------------------- detail

click_css(row_css($ID), 'the failed row');
$d = wait_for_value(sub { [detail($ID)] })->[0];
ok $d, 'a click on the failed row opens its detail';
$d ||= { attempts => [] };
ok row($ID)->{detail_next}, '... right after the row';
is $d->{line}, 'POST http://127.0.0.1:' . $t->port('tracker') . '/pb',
    '... the request line';
like $d->{headers}, qr/^webhook-id: \Q$ID\E$/mi, '... headers with webhook-id';
like $d->{body}, qr/"tx": "T1"/, '... the body, pretty-printed';
is scalar @{ $d->{attempts} }, 2, '... two attempts';
is_deeply [map { $_->{class} } @{ $d->{attempts} }], ['attempt', 'attempt'],
    '... neither manual';
like $_->{summary}, qr/^\d{4}-\d\d-\d\dT.*, \d+ ms, HTTP 500$/,
    '... attempt: time, duration, HTTP 500' for @{ $d->{attempts} };

# ---------------------------------------------------------------- retry

click_css(row_css($ID) . ' button.retry', 'Retry');
my $m = wait_for_value(sub { my $m = message(); [$m->{text} ? $m : undef] })->[0];
is $m && $m->{text}, "Sent again: $ID", 'Retry: the message names the delivery';
is $m && $m->{class}, '', '... not an error';
$row = wait_for_value(sub {
    my $r = row($ID);
    [$r && $r->{state} eq 'delivered' && $r->{attempts} eq '3' ? $r : undef, $r];
});
$row = $row->[0] // $row->[1];
is $row->{state}, 'delivered', 'the row turns delivered';
is $row->{class}, 'delivery delivered', '... its class too';
is $row->{attempts}, '3', '... three attempts';
is $row->{last}, 'HTTP 200', '... the last answered 200';
ok $row->{detail_next}, '... the detail still open';

$d = wait_for_value(sub {
    my $d = detail($ID);
    [$d && @{ $d->{attempts} } == 3 ? $d : undef, $d];
});
$d = $d->[0] // $d->[1] // { attempts => [] };
is scalar @{ $d->{attempts} }, 3, 'the detail shows three attempts';
is $d->{attempts}[-1]{class}, 'attempt manual', '... the last one manual';
like $d->{attempts}[-1]{summary}, qr/, HTTP 200, manual$/,
    '... its summary says so';
is $d->{attempts}[1]{class}, 'attempt', '... the scheduled ones are not';

my $got = $t->wait_received(tracker => 3);
is scalar @$got, 3, 'the tracker got a third request';
is $got->[2]{headers}{'webhook-id'}, $ID, '... the same delivery';

# ---------------------------------------------------------------- chart

# the tracker: two 500s, then the manual 200; members: two 200s
my %hour = (tracker => [1, 2], members => [2, 0]);
my $cbs_json = { map { $_->{name} => $_ } @{ status()->{callbacks} } };
for my $name (sort keys %hour) {
    my $h = $cbs_json->{$name}{last_hour} // {};
    is scalar @{ $h->{delivered} // [] }, 60,
        "$name: last_hour has 60 minutes delivered";
    is scalar @{ $h->{failed} // [] }, 60, '... and 60 failed';
    my ($ok, $bad) = (0, 0);
    $ok += $_ for @{ $h->{delivered} };
    $bad += $_ for @{ $h->{failed} };
    is_deeply [$ok, $bad], $hour{$name},
        "... $hour{$name}[0] delivered, $hour{$name}[1] failed in the hour";
    like $h->{since}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/,
        '... since: a minute\'s start';
    is $h->{delivered}[-1] + $h->{failed}[-1] + $h->{delivered}[-2]
       + $h->{failed}[-2], $ok + $bad, '... all in the last two minutes';
}

# the page against the JSON of the same moment (the minute may turn
# between the two, and the page refreshes every 5 s)
for my $name (sort keys %hour) {
    my ($shown, $h);
    $b->wait_until(sub {
        $h = { map { $_->{name} => $_ } @{ status()->{callbacks} } }
             ->{$name}{last_hour};
        $shown = chart($name);
        $shown && "@{ $shown->{delivered} }" eq "@{ $h->{delivered} }"
               && "@{ $shown->{failed} }" eq "@{ $h->{failed} }";
    }, 10);
    $shown //= {};
    is_deeply $shown->{delivered}, $h->{delivered},
        "$name: the chart's delivered bars are the JSON's minutes";
    is_deeply $shown->{failed}, $h->{failed}, '... and its failed bars';
    is $shown->{svg}, 'http://www.w3.org/2000/svg', '... an inline SVG';
    ok $shown->{rects_svg}, '... of SVG elements, not markup';
    ok $shown->{shown}, '... drawn';
    is $shown->{role}, 'img', '... an image to assistive technology';
    my $what = "$name, last hour: $hour{$name}[0] delivered, "
             . "$hour{$name}[1] failed";
    is $shown->{title}, $what, '... titled with its totals';
    is $shown->{caption}, $what, '... captioned so';
    # heights: to the scale of the busiest minute, 40 px
    my $max = 1;
    $max < $_ and $max = $_ for @{ $h->{delivered} }, @{ $h->{failed} };
    my @want = map { $_ * 40 / $max } @{ $h->{delivered} };
    my @got = @{ $shown->{up} // [] };
    ok @got == 60 && !grep({ abs($got[$_] - $want[$_]) > 0.01 } 0 .. 59),
        '... bars up as high as their counts' or diag "@got";
    @want = map { $_ * 40 / $max } @{ $h->{failed} };
    @got = @{ $shown->{down} // [] };
    ok @got == 60 && !grep({ abs($got[$_] - $want[$_]) > 0.01 } 0 .. 59),
        '... bars down as low' or diag "@got";
    # each minute with attempts: titled with its time (UTC) and counts
    my ($hh, $mm) = ($h->{since} // '') =~ /T(\d\d):(\d\d)/;
    my $minute = sub {
        my $m = $hh * 60 + $mm + $_[0];
        sprintf '%02d:%02d', $m / 60 % 24, $m % 60;
    };
    my @busy = grep { $h->{delivered}[$_] || $h->{failed}[$_] } 0 .. 59;
    is_deeply [map { $shown->{tips}[$_] } @busy],
        [map { $minute->($_) . ": $h->{delivered}[$_] delivered, "
               . "$h->{failed}[$_] failed" } @busy],
        '... each minute with attempts titled with its time and counts';
}

# the screenshot, taken when no re-render happened while it was taken
my $png = $t->repo . '/build/artifacts/status-page.png';
make_path($t->repo . '/build/artifacts');
# the whole page in the window: the charts at the top, the retried
# delivery's detail at the bottom
my $size = js(q{return [document.documentElement.scrollHeight,
                        window.outerHeight - window.innerHeight];});
$b->_cmd(POST => '/window/rect',
         { width => 1280, height => $size->[0] + $size->[1] });
for my $try (1 .. 5) {
    $b->wait_until(sub { my $d = detail($ID); $d && @{ $d->{attempts} } == 3 }, 10);
    js(q{
        window.pbChanged = false;
        if (!window.pbObserver) {
            window.pbObserver = new MutationObserver(function () { window.pbChanged = true; });
            window.pbObserver.observe(document.querySelector('#deliveries'),
                { childList: true, subtree: true, characterData: true });
        }
    });
    $b->screenshot($png);
    last unless js('return window.pbChanged');
}
diag "screenshot: $png";
$b->_cmd(POST => '/window/rect', { width => 1280, height => 1000 });
ok -s $png, 'screenshot saved';
my $magic = '';
if (open my $fh, '<:raw', $png) { read $fh, $magic, 8; close $fh }
is $magic, "\x89PNG\r\n\x1a\n", '... a PNG';

# ---------------------------------------------------------------- callbacks

# the callback's failed deliveries again: none is left, it says so
click_css('#callbacks tr[data-callback="tracker"] button.retry-failed',
          'Retry failed');
$m = wait_for_value(sub {
    my $m = message();
    [($m->{text} // '') =~ /^Sent again: \d+$/ ? $m : undef, $m];
});
$m = $m->[0] // $m->[1];
is $m->{text}, 'Sent again: 0', 'Retry failed: none left to send';

click_css('#callbacks tr[data-callback="members"] button.toggle', 'Disable');
$cb = wait_for_value(sub {
    my $c = callback_row('members');
    [$c && $c->{state} ne 'enabled' ? $c : undef, $c];
});
$cb = $cb->[0] // $cb->[1];
is $cb->{state}, 'disabled (api)', 'Disable: members disabled (api)';
is $cb->{class}, 'off', '... the row greyed';
is $cb->{toggle}, 'Enable', '... the button now Enable';
is message()->{text}, 'Disabled', '... the message';
is status()->{callbacks}[0]{state}, 'disabled', '... in the JSON as well';

click_css('#callbacks tr[data-callback="members"] button.toggle', 'Enable');
$cb = wait_for_value(sub {
    my $c = callback_row('members');
    [$c && $c->{state} eq 'enabled' ? $c : undef, $c];
});
$cb = $cb->[0] // $cb->[1];
is $cb->{state}, 'enabled', 'Enable: members enabled';
is $cb->{toggle}, 'Disable', '... the button Disable again';
is message()->{text}, 'Enabled', '... the message';

my %before = map { $_ => 1 } @{ ids_shown() };
click_css('#callbacks tr[data-callback="tracker"] button.test', 'Send test');
my $form = wait_for_value(sub { [test_form('tracker')] })->[0] // {};
is $form->{event}, 'select', "Send test opens the tracker's form: a select";
is_deeply $form->{options}, ['APPROVED'], '... of its events=';
is $form->{after}, 'tracker', '... under its row';
click_css('#callbacks tr[data-callback="tracker"] button.test', 'Send test');
ok $b->wait_until(sub { !test_form('tracker') }, 10), 'a second click closes it';

click_css('#callbacks tr[data-callback="members"] button.test', 'Send test');
$form = wait_for_value(sub { [test_form('members')] })->[0] // {};
is $form->{event}, 'input', "members' form (events=*): an event to type";
is_deeply $form->{fields}, { tx => 'HP-SAMPLE', product => '1234' },
    "... the sample's values, the event's own field left to the event";
my $form_css = '#callbacks tr.test-form[data-for="members"]';
type_into("$form_css .test-event", 'REFUNDED');
type_into("$form_css input[name=tx]", 'HP-PAGE');
# the auto refresh re-renders the callbacks: the input keeps the focus
js(q{window.pbRefreshed = false;
     new MutationObserver(function () { window.pbRefreshed = true; })
         .observe(document.querySelector('#callbacks tbody'),
                  { childList: true });});
ok $b->wait_until(sub { js('return window.pbRefreshed') }, 10)
   && js(q{return document.activeElement
                  === document.querySelector(arguments[0]);},
         "$form_css input[name=tx]"),
    '... the input typed in keeps the focus through a refresh';
click_css('#refresh', 'Refresh');
ok $b->wait_until(sub {
    my $f = test_form('members');
    $f && $f->{fields}{tx} eq 'HP-PAGE'
       && js(qq{return document.querySelector('$form_css .test-event').value})
          eq 'REFUNDED';
}, 10), '... what is typed stays through a refresh';
click_css("$form_css button.send-test", 'Send');
$m = wait_for_value(sub {
    my $m = message(); [$m->{text} =~ /^Test delivery queued: (msg_\w+)$/ ? $m : undef, $m];
});
$m = $m->[0] // $m->[1];
my ($test_id) = $m->{text} =~ /: (msg_\w+)$/;
ok $test_id, "Send test: the message names the delivery ($m->{text})";
$test_id //= 'none';
ok !$before{$test_id}, '... a new one';
$row = wait_for_value(sub {
    my $r = row($test_id);
    [$r && $r->{state} eq 'delivered' ? $r : undef, $r];
});
$row = $row->[0] // $row->[1];
is $row->{callback}, 'members', '... a new row for members';
is $row->{event}, 'REFUNDED (test)', '... the event typed, marked test';
is $row->{state}, 'delivered', '... delivered';
is ids_shown()->[0], $test_id, '... first (newest first)';
$got = $t->wait_received(members => 3);
is $got->[2]{headers}{'webhook-id'}, $test_id, 'members got the test send';
my $sent = eval { $json->decode($got->[2]{body}) } // {};
is $sent->{event}, 'REFUNDED', '... the event chosen';
is_deeply $sent->{data}, { note => 'from the sample',
                           data => { status => 'REFUNDED', tx => 'HP-PAGE',
                                     product => { id => 1234 } } },
    "... the sample document, with the event and the value typed";
is_deeply $sent->{fields},
    { status => 'REFUNDED', tx => 'HP-PAGE', product => '1234' },
    '... its fields';

# ---------------------------------------------------------------- filters

# Picks the option of value $value in select#$select with a click, as a
# user would (the options of callbacks and states have their text as value).
sub choose {
    my ($select, $value) = @_;
    my $n = js(q{
        var s = document.getElementById(arguments[0]);
        for (var i = 0; i < s.options.length; i++) {
            if (s.options[i].value === arguments[1]) { return i + 1; }
        }
        return 0;
    }, $select, $value);
    die "no option '$value' in #$select\n" unless $n;
    click_css("#$select option:nth-child($n)", "$select=$value");
    $b->wait_until(sub { js(q{return document.getElementById(arguments[0]).value},
                            $select) eq $value }, 10)
        or die "#$select did not take '$value'\n";
}

choose('f-callback', 'tracker');
my $cbs = wait_for_value(sub {
    my $ids = ids_shown();
    my @cbs = map { row($_)->{callback} } @$ids;
    [(@cbs && !grep { $_ ne 'tracker' } @cbs) ? \@cbs : undef];
})->[0];
is_deeply $cbs, ['tracker'], 'filter callback=tracker: its one row';

choose('f-state', 'failed');
ok $b->wait_until(sub {
    !@{ ids_shown() } && js(q{return document.querySelector('#deliveries tbody')
                                      .textContent}) eq 'none';
}, 10), 'and state=failed: none left, "none" shown';

choose('f-callback', '');
choose('f-state', 'delivered');
ok $b->wait_until(sub { @{ ids_shown() } == 4 }, 10),
    'state=delivered alone: the four deliveries';

type_into('#f-q', "hp-page\x{E007}");
ok $b->wait_until(sub {
    my $ids = ids_shown();
    @$ids == 1 && $ids->[0] eq $test_id;
}, 10), 'search "hp-page": the test delivery alone';
type_into('#f-q', "\x{E007}");
ok $b->wait_until(sub { @{ ids_shown() } == 4 }, 10),
    'search emptied: the four again';

# ---------------------------------------------------------------- refresh

sub new_event {
    my ($status, $tx) = @_;
    $t->get(url('/buy/n', status => $status, tx => $tx, product => 9));
    my $new;
    eventually(sub {
        ($new) = grep { $_->{event} eq $status }
                 @{ status(callback => 'members')->{deliveries} };
        $new && $new->{state} eq 'delivered';
    }, 10) or return undef;
    return $new->{id};
}

# no click from here: the auto refresh (every 5 s) lists a new event
my $new = new_event('REFUNDED', 'T3');
ok $new, 'one more event delivered';
ok $b->wait_for(row_css($new // 'none'), 10), 'the auto refresh lists it';

js(q{document.getElementById('auto').checked = false;});
$new = new_event('CHARGEBACK', 'T4');
ok $new, 'and one more, the auto refresh off';
click_css('#refresh', 'Refresh');
ok $b->wait_for(row_css($new // 'none'), 10), 'Refresh lists it';

# ---------------------------------------------------------------- end

is js(q{return document.querySelectorAll('img, iframe, object, embed').length}),
    0, 'still no element from the data';
is js('return document.title'), $TITLE, 'title still unchanged';
ok !js('return window.pwned'), 'no injected script ran';
is message()->{class}, '', 'no error message';

$b->quit;
$t->stop;
done_testing;
