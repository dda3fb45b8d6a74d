package PBTest::Server;

# The forked HTTP/1.1 servers behind $t->upstream and $t->receiver.
#
# Each server is one acceptor process (its own process group) that forks a
# child per connection, so slow answers never block other connections and
# keep-alive works naturally.  Every request is appended as one JSON line to a
# record file (flock'ed, since connection children write concurrently); a
# counter file next to it numbers requests across connections.  With TLS the
# child upgrades its connection (IO::Socket::SSL) before reading requests, so
# every answer, a hostile one too, can be sent over TLS as over plain TCP.

use strict;
use warnings;

use Fcntl qw(:flock O_RDWR O_CREAT SEEK_SET);
use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP SOL_SOCKET SO_LINGER TCP_NODELAY);
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

use PBTest::HTTP;

# Bodies are byte strings: utf8 mode stores each byte as one character and
# decoding gives the same bytes back.
my $JSON = JSON::PP->new->utf8->canonical;

# How long a connection may sit idle.  It only bounds stray processes: the
# harness kills every server when the test ends.
my $IDLE_TIMEOUT = 300;

my %REASON = (
    200 => 'OK', 201 => 'Created', 202 => 'Accepted', 204 => 'No Content',
    301 => 'Moved Permanently', 302 => 'Found', 304 => 'Not Modified',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 408 => 'Request Timeout', 429 => 'Too Many Requests',
    500 => 'Internal Server Error', 502 => 'Bad Gateway',
    503 => 'Service Unavailable', 504 => 'Gateway Timeout',
);

# Starts a server; returns the acceptor's pid (also its process group id).
# %a: name, addr (127.0.0.1 unless given), port, record (file path),
# respond (sub), delay (default seconds), tls ({ cert => PEM file, key =>
# PEM file }: a TLS server).
sub start {
    my (%a) = @_;
    my $addr = $a{addr} // '127.0.0.1';
    # One context for all connections: read once, its session tickets valid
    # on every connection.  Loaded here only: plain servers need no TLS.
    if ($a{tls}) {
        require IO::Socket::SSL;
        $a{tls} = IO::Socket::SSL::SSL_Context->new(
            SSL_server    => 1,
            SSL_cert_file => $a{tls}{cert},
            SSL_key_file  => $a{tls}{key},
        ) or die "server '$a{name}': TLS: " . IO::Socket::SSL::errstr() . "\n";
    }
    # Listening before the fork: the port accepts connections once we return.
    my $listen = IO::Socket::INET->new(
        LocalAddr => $addr,
        LocalPort => $a{port},
        Proto     => 'tcp',
        Listen    => 1024,
        ReuseAddr => 1,
    ) or die "server '$a{name}': cannot listen on $addr:$a{port}: $!\n";
    my $owner = $$;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        eval { _accept_loop($listen, $owner, \%a); 1 }
            or warn "PBTest server '$a{name}': $@";
        # Only reached when the test process went away without cleaning up:
        # take the connection children along.
        kill '-KILL', $$;
        POSIX::_exit(0);
    }
    # Also set here, so that kill_group works even before the child ran.
    POSIX::setpgid($pid, $pid);
    close $listen;
    return $pid;
}

# Kills a server with all its connection children and reaps the acceptor.
sub kill_group {
    my ($pid) = @_;
    kill '-KILL', $pid;
    waitpid $pid, 0;
}

# All records of a file, in arrival order.
sub records {
    my ($path) = @_;
    return [ sort { $a->{n} <=> $b->{n} } @{ json_lines($path) } ];
}

# The JSON lines of a record file, as written (flock'ed against writers).
sub json_lines {
    my ($path) = @_;
    open my $fh, '<', $path or return [];
    flock $fh, LOCK_SH;
    my @records = map { $JSON->decode($_) } grep { /\S/ } <$fh>;
    close $fh;
    return \@records;
}

sub _accept_loop {
    my ($listen, $owner, $a) = @_;
    $SIG{CHLD} = 'IGNORE';    # the kernel reaps connection children
    $SIG{PIPE} = 'IGNORE';    # a client that went away is a write error, not death
    # TAP goes through the test's STDOUT: keep these processes off it, so that
    # prove never waits for them either.
    open STDOUT, '>', '/dev/null';
    my $sel = IO::Select->new($listen);
    my $serial = 0;
    # getppid changes when the test process dies without cleaning up.
    while (getppid() == $owner) {
        next unless $sel->can_read(0.5);
        my $conn = $listen->accept or next;
        $serial++;
        my $pid = fork;
        if (!defined $pid) {
            warn "PBTest server '$a->{name}': fork: $!\n";
        }
        elsif ($pid == 0) {
            close $listen;
            $SIG{CHLD} = 'DEFAULT';
            _serve_connection($conn, $serial, $a);
            POSIX::_exit(0);
        }
        close $conn;
    }
}

sub _serve_connection {
    my ($sock, $serial, $a) = @_;
    # A response goes out in several writes (header, then body).  With Nagle
    # the body waits for the header's ACK, which the peer delays (~40 ms on
    # a kept-alive connection): nginx's upstream keepalive would then make
    # every proxied request look 40 ms slow.
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1)
        or warn "PBTest server '$a->{name}': TCP_NODELAY: $!\n";
    my $peer_port = $sock->peerport;
    # a failed handshake is the client's doing (a test of it): no answer
    if ($a->{tls}) {
        IO::Socket::SSL->start_SSL($sock, SSL_server => 1,
            SSL_reuse_ctx => $a->{tls}, Timeout => 10) or return;
    }
    my $reader = PBTest::HTTP->new($sock, timeout => $IDLE_TIMEOUT);
    my $on_conn = 0;
    my $close;    # how the last answer wants the connection closed
    while (1) {
        $reader->timeout($IDLE_TIMEOUT);
        # undef: closed, timed out or malformed; any of them ends the connection
        my $req = eval { $reader->read_request } or last;
        @$req{qw(time n conn conn_req peer_port)}
            = (time, _next_number("$a->{record}.count"), $serial, ++$on_conn, $peer_port);

        my $resp = eval { $a->{respond}->({%$req}, $req->{n}) };
        if (!defined $resp) {
            if ($@) {
                warn "PBTest server '$a->{name}': handler died: $@";
                $resp = { status => 500, body => "handler died: $@" };
            }
            else {
                $resp = { status => 200, body => 'ok' };
            }
        }
        my $raw = ref $resp ? $resp->{raw} : $resp;
        $req->{status} = !defined $raw ? $resp->{status} // 200
                       : $raw =~ m{^HTTP/\d\.\d (\d{3})} ? $1 : undef;
        # Recorded before any delay, so that tests see arrivals at once even
        # when the answer is slow (or never read: the client timed out).
        append_line($a->{record}, $req);

        $close = $resp->{close} if ref $resp;
        my $delay = ref $resp && defined $resp->{delay} ? $resp->{delay} : $a->{delay};
        sleep $delay if $delay;
        eval { _write_response($sock, $resp, $req) } or last;
    }
    _hang_up($sock, $close);
}

# Closes the connection as close => asks: 'tcp' without TLS's close_notify
# (as a server that just closes its socket), 'reset' with a RST (SO_LINGER
# 0, no close_notify either), anything else as a TLS server should.
sub _hang_up {
    my ($sock, $how) = @_;
    $how //= '';
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) if $how eq 'reset';
    # IO::Socket::SSL's close says close_notify unless told not to
    my @quiet = $sock->isa('IO::Socket::SSL') && $how =~ /^(?:tcp|reset)$/
              ? (SSL_no_shutdown => 1) : ();
    $sock->close(@quiet);
}

sub _wants_keepalive {
    my ($req) = @_;
    my $connection = $req->{headers}{connection} // '';
    return $req->{version} eq '1.1' ? $connection !~ /close/i
                                    : $connection =~ /keep-alive/i;
}

# Sends $resp; returns true if the connection may serve another request
# (not after close => ...).
sub _write_response {
    my ($sock, $resp, $req) = @_;
    if (!ref $resp) {
        PBTest::HTTP::write_all($sock, $resp);
        return 0;
    }
    if (defined $resp->{raw}) {
        my $out = $sock;
        if ($resp->{no_tls}) {
            # a copy of the descriptor: the TCP connection under TLS
            open my $tcp, '>&', fileno $sock or die "dup: $!\n";
            $out = $tcp;
        }
        PBTest::HTTP::write_all($out, $resp->{raw});
        return !$resp->{close};
    }
    my $keep = _wants_keepalive($req) && !$resp->{close};
    my $status = $resp->{status} // 200;
    my $body = $resp->{body} // '';
    my @headers = @{ $resp->{headers} // [] };
    if ($resp->{gzip}) {
        $body = PBTest::HTTP::gzip($body);
        push @headers, 'Content-Encoding' => 'gzip';
    }
    my $bodiless = $status < 200 || $status == 204 || $status == 304;
    # Headers given by the test win, so that tests can also send lying ones.
    my $given = PBTest::HTTP::header_names(@headers);
    if (!$bodiless && !$given->{'content-length'} && !$given->{'transfer-encoding'}) {
        push @headers, $resp->{chunked} ? ('Transfer-Encoding' => 'chunked')
                                        : ('Content-Length' => length $body);
    }
    push @headers, Connection => 'close' unless $keep || $given->{connection};
    PBTest::HTTP::write_all($sock, "HTTP/1.1 $status " . ($REASON{$status} // 'Unknown')
        . "\r\n" . PBTest::HTTP::format_headers(@headers) . "\r\n");
    return $keep if $bodiless || $req->{method} eq 'HEAD';

    my $length = length $body;
    $length = $resp->{close_after} if defined $resp->{close_after} && $resp->{close_after} < $length;
    # One write unless pieces are wanted (chunks, or a slow body).
    my $piece = ($resp->{chunked} || $resp->{body_delay}) ? ($resp->{chunk_size} || 1000)
                                                           : ($length || 1);
    my $held;
    for (my $off = 0; $off < $length; $off += $piece) {
        sleep $resp->{body_delay} if $off && $resp->{body_delay};
        _hold($resp->{hold_until})
            if $resp->{hold_after} && $off >= $resp->{hold_after} && !$held++;
        my $data = substr($body, $off, _min($piece, $length - $off));
        PBTest::HTTP::write_all($sock, $resp->{chunked}
            ? sprintf("%x\r\n%s\r\n", length $data, $data) : $data);
    }
    return 0 if defined $resp->{close_after};    # the caller closes mid-body
    PBTest::HTTP::write_all($sock, "0\r\n\r\n") if $resp->{chunked};
    return $keep;
}

# 1, 2, 3... across all connections of one server.
sub _next_number {
    my ($path) = @_;
    sysopen my $fh, $path, O_RDWR | O_CREAT or die "$path: $!\n";
    flock $fh, LOCK_EX;
    my $n = (<$fh> // 0) + 1;
    seek $fh, 0, SEEK_SET;
    truncate $fh, 0;
    print $fh $n;
    close $fh;    # flushes, then unlocks
    return $n;
}

# One record as a JSON line (flock'ed: connection children write at once).
sub append_line {
    my ($path, $record) = @_;
    open my $fh, '>>', $path or die "$path: $!\n";
    flock $fh, LOCK_EX;
    print $fh $JSON->encode($record), "\n";
    close $fh;
}

# Waits until $path exists (the test's signal), 30 s at most.
sub _hold {
    my ($path) = @_;
    my $deadline = time + 30;
    sleep 0.02 until -e $path || time > $deadline;
}

sub _min { $_[0] < $_[1] ? $_[0] : $_[1] }

1;
