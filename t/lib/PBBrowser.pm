package PBBrowser;

# A small WebDriver client: drives Debian's headless Chromium through
# chromedriver, for tests of pages served by nginx.  Core modules only.
#
#   plan skip_all => 'no chromium/chromedriver' unless PBBrowser->available;
#   my $b = PBBrowser->new(dir => $t->{dir});
#   $b->get("http://127.0.0.1:$port/");
#   $b->click($b->wait_for('#send', 5) // die "no #send button\n");
#   ok $b->wait_until(sub { $b->text($b->find('#status')) eq 'sent' }, 5), 'sent';
#   $b->screenshot("$dir/page.png");
#   $b->quit;    # also done when $b goes away
#
# Packages: chromium chromium-driver.  Everything (chromedriver log, browser
# profile) goes under dir; chromedriver.log there tells what went wrong.

use strict;
use warnings;

use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Scalar::Util qw(refaddr weaken);
use Time::HiRes qw(time sleep);

my $DRIVER  = '/usr/bin/chromedriver';
my $CHROME  = '/usr/bin/chromium';
my $ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';    # the W3C spec's element reference key
my $POLL    = 0.1;                                           # seconds between polls

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my %LIVE;    # refaddr => (weak) browser object, for the END cleanup

sub available { -x $DRIVER && -x $CHROME }

# dir (required): for the log and the profile; port: for chromedriver, e.g.
# $t->port('chromedriver') so that PBTest hands it to nobody else; timeout:
# seconds for chromedriver to get ready (default 15).
sub new {
    my ($class, %opt) = @_;
    my $dir = $opt{dir} // die "PBBrowser->new: dir is required\n";
    my $self = bless {
        dir   => $dir,
        log   => "$dir/chromedriver.log",
        port  => $opt{port} // _free_port(),
        owner => $$,    # forked children inherit this object: only the owner quits
        # Generous: a command waits for page loads and script results.
        http  => HTTP::Tiny->new(timeout => 60, agent => 'PBBrowser'),
    }, $class;
    $LIVE{ refaddr $self } = $self;
    weaken $LIVE{ refaddr $self };

    $self->_spawn;
    if (!eval { $self->_wait_ready($opt{timeout} // 15); $self->_new_session; 1 }) {
        my $err = $@;
        $self->quit;
        chomp $err;
        die "PBBrowser: $err\nlast lines of $self->{log}:\n" . $self->_log_tail(30) . "\n";
    }
    return $self;
}

sub _free_port {
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1,
    ) or die "PBBrowser: cannot bind a port: $!\n";
    return $sock->sockport;
}

sub _spawn {
    my ($self) = @_;
    my $pid = fork // die "PBBrowser: fork: $!\n";
    if ($pid == 0) {
        # Its own process group: quit kills chromium and its helpers with it.
        POSIX::setpgid(0, 0);
        # Never the test's STDOUT (the TAP stream).  Appending: chromedriver
        # (--append-log), chromium and this output share the file.
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{log};
        open STDERR, '>&', \*STDOUT;
        # Keep chromium's droppings under dir too: dot-directories (.cache,
        # .config) in $HOME, and temp dirs (singleton socket, shared memory
        # files, chromedriver's scoped dirs) that a killed browser leaves in
        # $TMPDIR.
        $ENV{HOME} = $ENV{TMPDIR} = $self->{dir};
        { no warnings 'exec'; exec $DRIVER, "--port=$self->{port}", "--log-path=$self->{log}", '--append-log' }
        print STDERR "cannot run $DRIVER: $!\n";
        POSIX::_exit(127);
    }
    # Also set here, so that quit kills the group even before the child ran.
    POSIX::setpgid($pid, $pid);
    $self->{pid} = $pid;
}

sub _wait_ready {
    my ($self, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        if (waitpid($self->{pid}, POSIX::WNOHANG()) == $self->{pid}) {
            delete $self->{pid};
            die "chromedriver exited with status " . ($? >> 8) . "\n";
        }
        my $res = $self->{http}->get("http://127.0.0.1:$self->{port}/status");
        # A 599 is "not listening yet".
        if ($res->{success}) {
            my $value = eval { $JSON->decode($res->{content})->{value} } // {};
            return if $value->{ready};
        }
        sleep $POLL;
    }
    die "chromedriver not ready on port $self->{port} within $timeout s\n";
}

sub _new_session {
    my ($self) = @_;
    my $value = $self->_request(POST => '/session', { capabilities => { alwaysMatch => {
        browserName          => 'chrome',
        'goog:chromeOptions' => {
            binary => $CHROME,
            args   => [
                '--headless=new',
                '--no-sandbox',                # tests run as root: chromium refuses to start sandboxed
                '--disable-gpu',
                '--disable-dev-shm-usage',     # containers have a small /dev/shm
                '--window-size=1280,1000',
                "--user-data-dir=$self->{dir}/chrome-profile",
            ],
        },
    } } });
    $self->{session} = $value->{sessionId} // die "no sessionId in the new session answer\n";
}

# One WebDriver command; returns its "value" or dies with the driver's error.
sub _request {
    my ($self, $method, $path, $body) = @_;
    my $res = $self->{http}->request($method, "http://127.0.0.1:$self->{port}$path",
        defined $body
            ? { content => $JSON->encode($body),
                headers => { 'Content-Type' => 'application/json; charset=utf-8' } }
            : {});
    my $data = eval { $JSON->decode($res->{content}) };
    # The session id says nothing to a reader: leave it out of messages.
    my $what = "$method " . ($path =~ s{^/session/\w+(?=/)}{}r);
    if (ref $data eq 'HASH' && ref $data->{value} eq 'HASH' && defined $data->{value}{error}) {
        my ($error, $msg) = ($data->{value}{error}, $data->{value}{message} // '');
        $msg =~ s/\s*\(Session info: [^)]*\)//;
        $msg =~ s/\s*Stacktrace:.*//s;    # chromedriver's own backtrace
        $msg = "$error: $msg" unless index($msg, $error) == 0;
        die "$what: $msg\n";
    }
    if (!$res->{success} || ref $data ne 'HASH') {
        # 599: HTTP::Tiny's own error (connection refused, timeout), text in content.
        die "$what: $res->{status} $res->{reason}: " . substr($res->{content} // '', 0, 300) . "\n";
    }
    return $data->{value};
}

# A command of the session: $path is relative to /session/{id}.
sub _cmd {
    my ($self, $method, $path, $body) = @_;
    die "PBBrowser: no session (quit already?)\n" unless $self->{session};
    my $value;
    eval { $value = $self->_request($method, "/session/$self->{session}$path", $body); 1 }
        or die "PBBrowser: $@";
    return $value;
}

# ---------------------------------------------------------------- commands

# Returns once the page has loaded (the document's load event).
sub get {
    my ($self, $url) = @_;
    $self->_cmd(POST => '/url', { url => $url });
}

sub find_all {
    my ($self, $css) = @_;
    my $found = $self->_cmd(POST => '/elements', { using => 'css selector', value => $css });
    return map { $_->{$ELEMENT} } @$found;
}

# The first match in document order.  /elements, not /element: no match is
# an empty list there, not an error.
sub find {
    my ($self, $css) = @_;
    my ($el) = $self->find_all($css);
    return $el;
}

sub wait_for {
    my ($self, $css, $seconds) = @_;
    return $self->wait_until(sub { $self->find($css) }, $seconds);
}

# Calls $cond until it returns true (then returns that), for at most $seconds
# (default 10); undef on timeout.  The last call is after the deadline, so a
# slow $cond still gets a final chance.
sub wait_until {
    my ($self, $cond, $seconds) = @_;
    my $end = time + ($seconds // 10);
    while (1) {
        my $last = time >= $end;
        my $value = $cond->();
        return $value if $value;
        return undef if $last;
        sleep $POLL;
    }
}

sub click {
    my ($self, $el) = @_;
    $self->_cmd(POST => "/element/$el/click", {});
}

# The rendered text, as a user sees it (hidden elements give '').
sub text {
    my ($self, $el) = @_;
    return $self->_cmd(GET => "/element/$el/text");
}

# The attribute, or undef when the element has none.
sub attr {
    my ($self, $el, $name) = @_;
    return $self->_cmd(GET => "/element/$el/attribute/$name");
}

# Runs $js as the body of a function (use "return ...", arguments[0]...).
# Elements in the result come back as ids, as from find.
sub script {
    my ($self, $js, @args) = @_;
    return _unwrap($self->_cmd(POST => '/execute/sync', { script => $js, args => \@args }));
}

sub _unwrap {
    my ($v) = @_;
    return [ map { _unwrap($_) } @$v ] if ref $v eq 'ARRAY';
    return $v unless ref $v eq 'HASH';
    return $v->{$ELEMENT} if keys %$v == 1 && exists $v->{$ELEMENT};
    return { map { $_ => _unwrap($v->{$_}) } keys %$v };
}

# The visible viewport as a PNG file.
sub screenshot {
    my ($self, $path) = @_;
    my $png = MIME::Base64::decode_base64($self->_cmd(GET => '/screenshot'));
    open my $fh, '>:raw', $path or die "PBBrowser: cannot write $path: $!\n";
    print $fh $png;
    close $fh or die "PBBrowser: cannot write $path: $!\n";
    return $path;
}

# ---------------------------------------------------------------- cleanup

# Ends the session (chromedriver closes chromium), then kills chromedriver's
# process group, which takes any chromium process left along.  Safe to call
# twice; a no-op in forked children.
sub quit {
    my ($self) = @_;
    return if $$ != $self->{owner};
    if (my $session = delete $self->{session}) {
        # Short: a hung driver is killed below anyway.
        $self->{http}->timeout(10);
        eval { $self->_request(DELETE => "/session/$session") };
    }
    my $pid = delete $self->{pid} or return;
    kill 'KILL', -$pid;
    waitpid $pid, 0;
    # Chromium's helpers are not chromedriver's children: they may still be
    # exiting.  Their zombies are left to init, which may reap them later.
    # (The crashpad handlers, in groups of their own, exit with the browser;
    # --disable-crashpad-for-testing would keep them away, but then pages
    # never finish loading.)
    my $end = time + 5;
    sleep $POLL while _group_alive($pid) && time < $end;
}

# Whether process group $pgid has a process that is not a zombie.
sub _group_alive {
    my ($pgid) = @_;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;    # gone meanwhile
        my $line = <$fh> // next;
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
        my ($state, undef, $pgrp) = split ' ', substr($line, rindex($line, ')') + 1);
        return 1 if $pgrp == $pgid && $state ne 'Z';
    }
    return 0;
}

sub _log_tail {
    my ($self, $n) = @_;
    open my $fh, '<', $self->{log} or return "(no log: $!)";
    my @lines = <$fh>;
    splice @lines, 0, -$n;
    chomp(my $tail = join '', @lines);
    return $tail;
}

sub DESTROY {
    local ($?, $@);    # waitpid and eval here must not change the test's exit code
    $_[0]->quit;
}

# Before global destruction: by then HTTP::Tiny's objects may be gone.
END {
    local ($?, $@);
    $_ && $_->quit for values %LIVE;
}

1;
