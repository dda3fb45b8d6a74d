package PBTest;

# Test harness for ngx_http_postback_module: runs the real nginx binary (with
# the built module, when the test's config loads it) against forked upstreams
# and callback receivers, all on 127.0.0.1.  t/00-harness.t shows every part.
#
#   my $t = PBTest->new;
#   $t->upstream(app => sub { my ($req) = @_; { body => '{"ok":1}' } });
#   $t->receiver('hook');
#   $t->dns(dns => names => { 'hook.test' => '127.0.0.1' });  # resolver
#   $t->nginx_conf("... listen 127.0.0.1:%%PORT_front%%; ...");
#   $t->start;
#   my $r = $t->get('/x');
#   my $hooks = $t->wait_received(hook => 1);
#   $t->stop;    # also checks the error log: one test, "error log clean"
#
# Environment: PB_MODULE (module path), PB_NGINX (nginx binary), PB_KEEP=1
# (keep the temp dir).

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA ();
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp ();
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Scalar::Util qw(refaddr weaken);
use Test::More ();
use Time::HiRes qw(time sleep);
use Exporter qw(import);

# helpers for test files: use PBTest qw(url eventually derived_id);
our @EXPORT_OK = qw(url eventually derived_id);

use PBTest::DNS;
use PBTest::HTTP;
use PBTest::Server;

my $REPO  = abs_path(dirname(__FILE__) . '/../..');
my $NGINX = $ENV{PB_NGINX} // '/usr/sbin/nginx';
my $POLL  = 0.02;    # seconds between polls

my %USED_PORT;    # ports handed out by this process: never hand one out twice
my %LIVE;         # refaddr => (weak) harness object, for the END cleanup

# Error log lines that fail a test unless allowed with allow_log.
my $BAD_LOG_LINE = qr/\[(?:alert|emerg|crit)\]|exited on signal/;

sub new {
    my ($class, %opt) = @_;
    my $tmp = File::Temp->newdir('pbtest-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{PB_KEEP});
    my $dir = $tmp->dirname;
    # When tests run as root, nginx workers run as "nobody": let them reach the
    # temp paths nginx creates under the directory.
    chmod 0755, $dir or die "chmod $dir: $!\n";
    my $self = bless {
        tmp     => $tmp,
        dir     => $dir,
        module  => $opt{module} // $ENV{PB_MODULE} // "$REPO/build/ngx_http_postback_module.so",
        owner   => $$,    # forked servers inherit this object: only the owner cleans up
        ports   => {},
        servers => {},    # name => acceptor pid
        allow   => [],
        conf    => '',
        log_checked => 0, # error log bytes already checked
    }, $class;
    $LIVE{ refaddr $self } = $self;
    weaken $LIVE{ refaddr $self };
    Test::More::diag("PB_KEEP: test files kept in $dir") if $ENV{PB_KEEP};
    return $self;
}

sub dir         { $_[0]{dir} }
sub module_path { $_[0]{module} }
sub repo        { $REPO }

# Deterministic gzip of $bytes: the exact bytes an upstream with gzip => 1 sends.
# Callable as PBTest::gzip($bytes) or $t->gzip($bytes), hence the last argument.
sub gzip { PBTest::HTTP::gzip($_[-1]) }

# ---------------------------------------------------------------- ports

sub port {
    my ($self, $name) = @_;
    return $self->{ports}{$name} //= _free_port();
}

sub _free_port {
    for (1 .. 100) {
        my $sock = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1,
        ) or die "cannot bind a port: $!\n";
        my $port = $sock->sockport;
        close $sock;
        return $port unless $USED_PORT{$port}++;
    }
    die "no unused port found\n";
}

# ---------------------------------------------------------------- servers

# An upstream: $handler->($req, $n) returns the response, $n counting the
# requests of this server from 1, $req as a record of received() below.
# A response is raw bytes (written as is, then the connection closes) or
#   { status => 200, headers => [ Name => 'value', ... ] (sent in order),
#     body => 'bytes', chunked => 1, chunk_size => 1000, delay => seconds
#     before answering, body_delay => seconds between pieces of chunk_size
#     bytes (chunked or not), close_after => N (close after N body bytes,
#     the header still announcing all), hold_after => N, hold_until =>
#     $path (the pieces after the first N body bytes wait until the file
#     $path exists, 30 s at most), close => 1 (close the connection after
#     this answer; 'tcp': without TLS's close_notify; 'reset': with a RST),
#     gzip => 1 }, or { raw => 'bytes' } (written as is, the connection
#     then kept for the next request unless close => is given; no_tls => 1:
#     on the TCP connection under TLS, as no TLS record)
# Content-Length (or Transfer-Encoding) is added unless given in headers.
# undef answers 200 "ok"; a handler that dies answers 500.
sub upstream {
    my ($self, $name, $handler) = @_;
    return $self->_serve($name, $handler, undef);
}

# A callback receiver: answers 200 "ok" unless told otherwise by respond =>
# sub { my ($req, $n) = @_; ... }, status => CODE, delay => seconds, or
# fail_first => N (500 to its first N requests, then 200; the body says
# "<name> says <n>").  addr => '127.0.0.2' listens there instead of on
# 127.0.0.1, with port => the port of another server's (a name that moves
# from one address to the other keeps its url).  tls => { cert => PATH,
# key => PATH } makes it an https:// receiver (see self_signed_cert).
sub receiver {
    my ($self, $name, %opt) = @_;
    my $status = $opt{status} // 200;
    my $respond = $opt{respond} // sub { { status => $status, body => 'ok' } };
    if (my $fails = $opt{fail_first}) {
        $respond = sub {
            my ($req, $n) = @_;
            return { status => $n <= $fails ? 500 : 200,
                     body => "$name says $n" };
        };
    }
    $self->{ports}{$name} //= $opt{port} if $opt{port};
    return $self->_serve($name, $respond, $opt{delay}, $opt{addr}, $opt{tls});
}

sub _serve {
    my ($self, $name, $respond, $delay, $addr, $tls) = @_;
    die "server '$name' is already running\n" if $self->{servers}{$name};
    $self->{servers}{$name} = PBTest::Server::start(
        name    => $name,
        addr    => $addr,
        port    => $self->port($name),
        record  => $self->_record_file($name),
        respond => $respond,
        delay   => $delay,
        tls     => $tls,
    );
    return $self->port($name);
}

# A DNS server on 127.0.0.1, UDP (PBTest::DNS): names => { name => IPv4
# address } answered, NXDOMAIN for other names; silent => 1 answers
# nothing.  Returns its port.  Stopped with stop_server, as the others.
sub dns {
    my ($self, $name, %opt) = @_;
    die "server '$name' is already running\n" if $self->{servers}{$name};
    my $map = "$self->{dir}/dns.$name.json";
    # restarted without names: the names it had
    PBTest::DNS::set_map($map, $opt{names} // {}) if $opt{names} || !-e $map;
    $self->{servers}{$name} = PBTest::DNS::start(
        name   => $name,
        port   => $self->port($name),
        map    => $map,
        record => $self->_record_file($name),
        silent => $opt{silent},
    );
    return $self->port($name);
}

# Gives a DNS server's names new addresses (or a new set of names), from
# its next query on.
sub dns_names {
    my ($self, $name, $names) = @_;
    PBTest::DNS::set_map("$self->{dir}/dns.$name.json", $names);
}

# The queries a DNS server saw, in arrival order, of the name $qname and
# type $type ("A", "AAAA") when given: records of name, type, rcode, time.
sub dns_queries {
    my ($self, $name, $qname, $type) = @_;
    return [ grep { (!defined $qname || $_->{name} eq lc $qname)
                    && (!defined $type || $_->{type} eq $type) }
             @{ PBTest::DNS::records($self->_record_file($name)) } ];
}

# Kills a server (e.g. a receiver going down); its records stay, and starting
# it again under the same name reuses the port and continues the numbering.
sub stop_server {
    my ($self, $name) = @_;
    my $pid = delete $self->{servers}{$name} or return;
    PBTest::Server::kill_group($pid);
}

sub _record_file {
    my ($self, $name) = @_;
    (my $file = $name) =~ s/[^\w.-]/_/g;
    return "$self->{dir}/requests.$file.jsonl";
}

# Requests a server got, in arrival order.  Each record: method, uri, path,
# query, args, version, headers, body, peer_port, conn (connection serial),
# conn_req (1-based index on that connection), n (1-based index at this
# server), time (arrival, Time::HiRes) and status (the status answered).
sub received {
    my ($self, $name) = @_;
    return PBTest::Server::records($self->_record_file($name));
}

sub wait_received {
    my ($self, $name, $count, $timeout) = @_;
    my $records;
    _poll($timeout // 10, sub { @{ $records = $self->received($name) } >= $count });
    return $records;
}

# ---------------------------------------------------------------- config

sub write_file {
    my ($self, $relpath, $content) = @_;
    my $path = "$self->{dir}/$relpath";
    make_path(dirname($path));
    open my $fh, '>', $path or die "$path: $!\n";
    print $fh $content;
    close $fh or die "$path: $!\n";
    return $path;
}

sub nginx_conf {
    my ($self, $text) = @_;
    my $dir = $self->{dir};
    $self->{conf} = "pid $dir/nginx.pid;\nerror_log $dir/error.log info;\n\n"
                  . $self->_subst($text);
    $self->write_file('nginx.conf', $self->{conf});
}

# Lines for http {}: every temp path and the access log under the test dir.
sub http_common {
    my ($self) = @_;
    my $dir = $self->{dir};
    return join '', map { "    $_\n" }
        "client_body_temp_path $dir/client_body_temp;",
        "proxy_temp_path $dir/proxy_temp;",
        "fastcgi_temp_path $dir/fastcgi_temp;",
        "uwsgi_temp_path $dir/uwsgi_temp;",
        "scgi_temp_path $dir/scgi_temp;",
        "access_log $dir/access.log;";
}

# A whole nginx.conf: the module loaded, $opt{workers} worker processes (2),
# and $http inside http {} after the http_common lines.
sub module_conf {
    my ($self, $http, %opt) = @_;
    return "load_module %%MODULE%%;\nworker_processes " . ($opt{workers} // 2)
         . ";\nevents {}\nhttp {\n" . $self->http_common . "\n$http}\n";
}

# The nginx.conf of a checkout test: zone => "pb:1m" (as postback_zone
# takes it), fields => [ name => JSONPath, ... ] (status $.status and tx
# $.tx), the event from $postback_status, and one server: /buy/ proxies to
# /doc/, which answers doc => (a JSON template, by default the query's
# status and tx), with the callbacks => text given (no /buy/ without it);
# locations => more locations of that server (see callback_locations);
# /status/ holds the status; servers => more servers.  workers => as
# module_conf.
sub checkout_conf {
    my ($self, %o) = @_;
    my @fields = @{ $o{fields} // [ status => '$.status', tx => '$.tx' ] };
    my $doc = $o{doc} // '{"status":"$arg_status","tx":"$arg_tx"}';
    my $http = "    postback_zone " . ($o{zone} // 'pb:1m') . ";\n";
    while (my ($name, $path) = splice @fields, 0, 2) {
        $http .= "    postback_field $name $path;\n";
    }
    my $buy = defined $o{callbacks}
        ? $self->callback_locations(buy => $o{callbacks}) : '';
    my $locations = $o{locations} // '';
    my $servers = $o{servers} // '';
    $http .= <<"EOF";
    postback_event \$postback_status;

    server {
        listen 127.0.0.1:%%PORT_front%%;

$buy$locations
        location /doc/ {
            default_type application/json;
            return 200 '$doc';
        }
        location /status/ {
            postback_status;
        }
    }
$servers
EOF
    return $self->module_conf($http, workers => $o{workers});
}

# Locations of the checkout server, for checkout_conf's locations =>: for
# each NAME => TEXT, /NAME/ proxies to /doc/ with TEXT as its callbacks; a
# TEXT of one callback's parameters (it starts with "url=") is callback
# NAME's.
sub callback_locations {
    my ($self, %callbacks) = @_;
    return join '', map {
        my $text = $callbacks{$_} =~ /^url=/
            ? "            postback_callback $_ $callbacks{$_};"
            : $callbacks{$_};
        <<"EOF" } sort keys %callbacks;
        location /$_/ {
            proxy_pass http://127.0.0.1:%%PORT_front%%/doc/;
            postback on;
$text
        }
EOF
}

sub include_conf_d {
    my ($self, $file) = @_;
    return $self->conf_d_text($file);
}

# <repo>/conf.d/$file with the strings of %$map replaced (longest first, in one
# pass, so replacements are never replaced again), then the %%...%% placeholders.
sub conf_d_text {
    my ($self, $file, $map) = @_;
    my $text = _slurp("$REPO/conf.d/$file") // die "cannot read conf.d/$file: $!\n";
    if ($map && %$map) {
        my $re = join '|', map { quotemeta } sort { length $b <=> length $a } keys %$map;
        $text =~ s/($re)/$map->{$1}/g;
    }
    return $self->_subst($text);
}

sub _subst {
    my ($self, $text) = @_;
    $text =~ s/%%PORT_([\w.-]+)%%/$self->port($1)/ge;
    $text =~ s/%%MODULE%%/$self->{module}/g;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    $text =~ s/%%REPO%%/$REPO/g;
    die "unknown placeholder $1 in nginx config\n" if $text =~ /(%%[A-Z][A-Z0-9_]*%%)/;
    return $text;
}

# A self-signed certificate for a TLS server (of the nginx under test, or a
# receiver's tls =>), signed by no trusted CA: %%DIR%%/<prefix>cert.pem and
# %%DIR%%/<prefix>key.pem, valid for names => (subjectAltName's syntax;
# 127.0.0.1 and localhost).  Returns { cert => PATH, key => PATH }.
sub self_signed_cert {
    my ($self, %opt) = @_;
    my $dir = $self->{dir};
    my $prefix = $opt{prefix} // '';
    my $names = $opt{names} // 'IP:127.0.0.1,DNS:localhost';
    my $out = qx{openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $dir/${prefix}key.pem -out $dir/${prefix}cert.pem -days 2 -subj /CN=test -addext subjectAltName=$names 2>&1};
    die "openssl failed:\n$out" if $?;
    return { cert => "$dir/${prefix}cert.pem", key => "$dir/${prefix}key.pem" };
}

# ---------------------------------------------------------------- nginx

# (exit code, output) of `nginx -t`.
sub test_conf {
    my ($self) = @_;
    return $self->_run_nginx('-t');
}

sub start {
    my ($self) = @_;
    die "nginx is already running\n" if _alive($self->{master});
    my ($rc, $out) = $self->_run_nginx;
    die "nginx failed to start (exit $rc):\n$out\n--- error.log:\n" . $self->error_log if $rc;
    my @ports = $self->{conf} =~ /^\s*listen\s+(?:(?:127\.0\.0\.1|localhost|\*):)?(\d+)\b/mg;
    $self->_wait(5, 'nginx to start', sub {
        $self->{master} = $self->_pid_file_master or return 0;
        return 0 if $self->worker_pids < $self->_expected_workers;
        return !grep { !_accepts($_) } @ports;
    });
}

sub reload {
    my ($self) = @_;
    my $master = $self->{master};
    die "nginx is not running\n" unless _alive($master);
    my %old = map { $_ => 1 } $self->worker_pids;
    my $log_from = -s $self->_log_path;
    kill 'HUP', $master;
    # Done when no old worker accepts any more (they are gone or shutting down)
    # and the new generation is complete; a refused config ends it at once.
    $self->_wait(5, 'nginx reload', sub {
        my @emerg = grep { /\[emerg\]/ } split /\n/, $self->_log_from($log_from);
        die "nginx refused the new config:\n" . join("\n", @emerg) . "\n" if @emerg;
        my @workers = $self->worker_pids;
        return 0 if grep { $old{$_} } @workers;
        return @workers >= $self->_expected_workers;
    });
}

sub stop {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->_stop_nginx;
    $self->_check_log(1);
}

# SIGKILL to the master and all its children, as when nginx crashes or is
# killed; the next start is a fresh one.
sub kill_all {
    my ($self) = @_;
    my $master = delete $self->{master} // $self->_pid_file_master;
    return unless _alive($master);
    my @children = _children($master);
    kill 'KILL', $master, @children;
    _poll(5, sub { !grep { _alive($_) } $master, @children });
}

# Active worker pids (children of the master that are not shutting down).
sub worker_pids {
    my ($self) = @_;
    return unless _alive($self->{master});
    my @pids = sort { $a <=> $b }
        grep { _cmdline($_) =~ /worker process(?! is shutting down)/ }
        _children($self->{master});
    return @pids;    # the count in scalar context
}

sub error_log {
    my ($self) = @_;
    return _slurp($self->_log_path) // '';
}

# Error log lines matching $re are not failures (e.g. expected [emerg]s).
sub allow_log {
    my ($self, $re) = @_;
    push @{ $self->{allow} }, $re;
}

sub _log_path { "$_[0]{dir}/error.log" }

sub _log_from {
    my ($self, $offset) = @_;
    open my $fh, '<', $self->_log_path or return '';
    seek $fh, $offset // 0, 0;
    local $/;
    return scalar(<$fh>) // '';
}

sub _run_nginx {
    my ($self, @args) = @_;
    my $dir = $self->{dir};
    my $out = "$dir/nginx.out";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        # Output to a file, never to the test's STDOUT (the TAP stream): the
        # daemon would otherwise hold it open.  -e: even messages logged before
        # the config is read go to the test's error log.
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        { no warnings 'exec'; exec $NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log", @args }
        print STDERR "cannot run $NGINX: $!\n";
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, _slurp($out) // '');
}

# The live nginx master named by the pid file, if any (the file may be stale).
sub _pid_file_master {
    my ($self) = @_;
    my ($pid) = (_slurp("$self->{dir}/nginx.pid") // '') =~ /^(\d+)/ or return;
    return _alive($pid) && _cmdline($pid) =~ /nginx/ ? $pid : undef;
}

sub _expected_workers {
    my ($self) = @_;
    return 0 if $self->{conf} =~ /^\s*master_process\s+off\s*;/m;
    # "auto" (or no directive) counts as 1: at least one must be up.
    my ($n) = $self->{conf} =~ /^\s*worker_processes\s+(\d+)\s*;/m;
    return $n // 1;
}

sub _stop_nginx {
    my ($self) = @_;
    # The pid file covers a start that died before it learnt the master's pid.
    my $master = delete $self->{master} // $self->_pid_file_master;
    return unless _alive($master);
    my @children = _children($master);
    kill 'QUIT', $master;
    my $graceful = _poll(10, sub { !_alive($master) });
    if (!$graceful) {
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        Test::More::ok(0, 'nginx stopped gracefully within 10 s');
        kill 'TERM', $master;
        kill 'KILL', $master unless _poll(2, sub { !_alive($master) });
    }
    # A master waits for its workers, but never leave one behind.
    kill 'KILL', grep { _alive($_) && _cmdline($_) =~ /^nginx/ } @children;
}

# Fails a test when the error log got bad lines since the last check; with
# $report, passes one when it got none.
sub _check_log {
    my ($self, $report) = @_;
    my $text = $self->_log_from($self->{log_checked});
    $text =~ s/[^\n]*\z//;    # a line still being written is checked next time
    $self->{log_checked} += length $text;
    my @bad = grep { my $line = $_; !grep { $line =~ $_ } @{ $self->{allow} } }
              grep { $_ =~ $BAD_LOG_LINE } split /\n/, $text;
    return unless $report || @bad;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok(!@bad, 'error log clean')
        or Test::More::diag("unexpected error log lines:\n" . join "\n", @bad);
}

# ---------------------------------------------------------------- client

# One HTTP/1.1 request to $t->port($opt{port} // 'front').  Returns { status,
# headers, body, raw, elapsed }, plus error (timeout, connection closed...)
# when the response did not arrive whole; what did arrive is kept.
# after_send => sub { ... } runs once the request is sent, before any of
# the response is read.
sub request {
    my ($self, $method, $path, %opt) = @_;
    my $port = $self->port($opt{port} // 'front');
    my $timeout = $opt{timeout} // 10;
    my $start = time;
    my %res = (status => undef, headers => {}, body => '', raw => '');
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => $timeout,
    );
    if (!$sock) {
        return { %res, error => "cannot connect to port $port: $!", elapsed => time - $start };
    }
    my @headers = @{ $opt{headers} // [] };
    my $given = PBTest::HTTP::header_names(@headers);
    unshift @headers, Host => "127.0.0.1:$port" unless $given->{host};
    push @headers, Connection => 'close' unless $given->{connection};
    push @headers, 'Content-Length' => length $opt{body}
        if defined $opt{body} && !$given->{'content-length'} && !$given->{'transfer-encoding'};

    my $reader = PBTest::HTTP->new($sock, timeout => $timeout, keep_raw => 1);
    # nginx may answer early (e.g. 413) and close before reading the whole
    # body: a failed write still leaves a response to read.
    local $SIG{PIPE} = 'IGNORE';
    eval {
        PBTest::HTTP::write_all($sock, "$method $path HTTP/1.1\r\n"
            . PBTest::HTTP::format_headers(@headers) . "\r\n" . ($opt{body} // ''));
    };
    $opt{after_send}->() if $opt{after_send};
    eval { $reader->read_response($method, \%res); 1 } or chomp($res{error} = $@);
    close $sock;
    $res{raw} = $reader->raw;
    $res{elapsed} = time - $start;
    return \%res;
}

sub get {
    my ($self, $path, %opt) = @_;
    return $self->request('GET', $path, %opt);
}

sub post {
    my ($self, $path, $body, %opt) = @_;
    return $self->request('POST', $path, %opt, body => $body);
}

# ---------------------------------------------------------------- cleanup

# Stops nginx and every server.  Passing checks are not reported here: this
# may run after done_testing, where an extra passing test would break the plan.
sub _cleanup {
    my ($self) = @_;
    return if $self->{cleaned}++ || $$ != $self->{owner};
    $self->_stop_nginx;
    PBTest::Server::kill_group($_) for values %{ $self->{servers} };
    $self->{servers} = {};
    $self->_check_log(0);
    if (!Test::More->builder->is_passing && -e $self->_log_path) {
        my @lines = split /\n/, $self->error_log;
        splice @lines, 0, -30;
        Test::More::diag("last lines of $self->{dir}/error.log"
            . ($ENV{PB_KEEP} ? '' : ' (PB_KEEP=1 keeps it)') . ":\n" . join "\n", @lines);
    }
}

sub DESTROY {
    local ($?, $@);
    $_[0]->_cleanup;
}

# Cleans up before global destruction.  Compiled after Test::Builder's END
# (use Test::More above), this one runs first, so its failures still count.
END {
    local $?;    # waitpid here must not change the test's exit code
    $_ && $_->_cleanup for values %LIVE;
}

# ---------------------------------------------------------------- helpers

# ---------------------------------------------------------------- helpers

# The status JSON at $path (/status/ unless given), every delivery in it.
sub status_json {
    my ($self, $path) = @_;
    my $r = $self->get(($path // '/status/') . '?limit=1000');
    die "status: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    return JSON::PP->new->utf8->decode($r->{body});
}

# A callback's entry in the status JSON ({} when it has none).
sub callback_status {
    my ($self, $name, $path) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ $self->status_json($path)->{callbacks} };
    return $cb // {};
}

# A callback's deliveries in the status JSON, oldest first.
sub callback_deliveries {
    my ($self, $name, $path) = @_;
    return reverse grep { $_->{callback} eq $name }
                   @{ $self->status_json($path)->{deliveries} };
}

# The engines sending the callbacks, from the status JSON at $path: the
# distinct ones, sorted ("curl", "nginx").
sub engines {
    my ($self, $path) = @_;
    my $r = $self->get($path);
    die "status $path: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    my %seen = map { $_->{engine} => 1 }
               @{ JSON::PP->new->decode($r->{body})->{callbacks} };
    return [ sort keys %seen ];
}

# "/path?k=v&..." with the arguments percent-encoded, in a fixed order.
sub url {
    my ($path, %a) = @_;
    return $path unless %a;
    return "$path?" . join '&', map {
        (my $v = $a{$_}) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        "$_=$v";
    } sort keys %a;
}

# The webhook-id of a keyed delivery, computed as pb_sign.h documents it:
# "msg_" and 12 bytes of SHA-256 over the length-prefixed callback, key
# and event.
sub derived_id {
    my ($callback, $key, $event) = @_;
    my $digest = Digest::SHA::sha256(join '',
        map { pack('Q>', length $_) . $_ } $callback, $key, $event);
    return 'msg_' . unpack('H24', $digest);
}

# Polls $cond until it is true, for $timeout seconds at most (20): whether
# it came true.
sub eventually {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 20);
    until ($cond->()) {
        return 0 if time > $deadline;
        sleep 0.1;
    }
    return 1;
}

# ---------------------------------------------------------------- status page

# The capture counters of the status location at $path, flattened: examined,
# events, sanitized and each skip reason.
sub capture_counters {
    my ($self, $path) = @_;
    my $r = $self->get("$path?limit=0");
    die "status page: $r->{status}\n" unless ($r->{status} // 0) == 200;
    my $c = JSON::PP->new->decode($r->{body})->{capture};
    return { examined => $c->{examined}, events => $c->{events},
             sanitized => $c->{header_values_sanitized}, %{ $c->{skipped} } };
}

# Runs $code; returns its result and the capture counters that moved, once
# the response's outcome is counted: "examined" and one more counter moved,
# polled for at most 3 s ("truncated" is counted when the request is freed,
# which may come just after the client saw the connection close).
sub counted {
    my ($self, $path, $code) = @_;
    my $before = $self->capture_counters($path);
    my $res = $code->();
    my ($delta, $deadline) = (undef, time + 3);
    while (1) {
        my $now = $self->capture_counters($path);
        $delta = { map { $_ => $now->{$_} - $before->{$_} }
                   grep { $now->{$_} != $before->{$_} } keys %$now };
        last if ($delta->{examined} && keys %$delta > 1) || time > $deadline;
        sleep $POLL;
    }
    return ($res, $delta);
}

sub _wait {
    my ($self, $timeout, $what, $cond) = @_;
    return if _poll($timeout, $cond);
    my @lines = split /\n/, $self->error_log;
    splice @lines, 0, -20;
    die "timed out after $timeout s waiting for $what; error.log ends with:\n"
        . join("\n", @lines) . "\n";
}

# Calls $cond every $POLL seconds until it is true (returns 1) or $timeout
# seconds passed (returns 0).
sub _poll {
    my ($timeout, $cond) = @_;
    my $deadline = time + $timeout;
    while (1) {
        return 1 if $cond->();
        return 0 if time >= $deadline;
        sleep $POLL;
    }
}

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar(<$fh>) // '';
}

# Alive and not a zombie (a daemon's zombie may linger when nothing reaps it).
sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    my $stat = _slurp("/proc/$pid/stat") // return 0;
    return 1 if $stat !~ /^.*\)\s+Z/s;
    # A zombie leader's other threads (nginx's thread pool) may still be
    # exiting after a SIGKILL, its files (listening sockets) still open.
    my @threads = glob "/proc/$pid/task/*";
    return @threads > 1;
}

sub _children {
    my ($ppid) = @_;
    opendir my $dh, '/proc' or return;
    my @children;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat") // next;
        # "pid (comm) state ppid ...": comm may hold spaces or ')', so match
        # from the last ')'.
        my ($state, $parent) = $stat =~ /^.*\)\s+(\S)\s+(\d+)/s or next;
        push @children, $pid if $parent == $ppid && $state ne 'Z';
    }
    return @children;
}

sub _cmdline {
    my ($pid) = @_;
    my $cmd = _slurp("/proc/$pid/cmdline") // return '';
    $cmd =~ tr/\0/ /;
    return $cmd;
}

sub _accepts {
    my ($port) = @_;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1,
    ) or return 0;
    close $sock;
    return 1;
}

1;
