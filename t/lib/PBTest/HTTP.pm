package PBTest::HTTP;

# Minimal HTTP/1.1 message reading shared by the harness client ($t->request)
# and its forked servers.  An object wraps one socket with a read buffer and a
# deadline, so that pipelined and keep-alive messages are read exactly.  Errors
# (timeout, connection closed mid-message) are thrown as strings.
#
# Tests may use it directly on a raw socket, e.g. for keep-alive checks:
#   my $r = PBTest::HTTP->new($sock, timeout => 5)->read_response('GET');

use strict;
use warnings;

use Errno qw(EINTR ECONNRESET);
use IO::Compress::Gzip ();
use IO::Select;
use Time::HiRes qw(time);

sub new {
    my ($class, $sock, %opt) = @_;
    my $self = bless {
        sock     => $sock,
        buf      => '',
        raw      => '',
        keep_raw => $opt{keep_raw},
    }, $class;
    $self->timeout($opt{timeout} // 10);
    return $self;
}

# Sets the deadline for everything read from now on.
sub timeout {
    my ($self, $seconds) = @_;
    $self->{deadline} = time + $seconds;
}

# Every byte received so far (only with keep_raw => 1).
sub raw { $_[0]{raw} }

# Reads the next request (server side).  Returns undef when the peer closed the
# connection cleanly between requests.
sub read_request {
    my ($self) = @_;
    my ($line, $headers) = $self->_read_head or return;
    my ($method, $uri, $version) = $line =~ m{^(\S+) (\S+) HTTP/(\d\.\d)$}
        or die "bad request line: $line\n";
    my ($path, $query) = $uri =~ /^([^?]*)(?:\?(.*))?$/s;
    $query //= '';
    my %req = (
        method  => $method,
        uri     => $uri,
        path    => $path,
        query   => $query,
        args    => parse_query($query),
        version => $version,
        headers => $headers,
        body    => '',
    );
    # libcurl (the module's delivery client) announces larger POST bodies with
    # "Expect: 100-continue" and would otherwise wait a second before sending.
    if (($headers->{expect} // '') =~ /100-continue/i && _has_body($headers)) {
        write_all($self->{sock}, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    $self->_read_body($headers, 0, \$req{body});
    return \%req;
}

# Reads one response (client side) into %$res (or a new hash), filling status,
# headers and body as they arrive, so that the caller keeps what was received
# when this dies halfway.  Interim 1xx responses are skipped.
sub read_response {
    my ($self, $method, $res) = @_;
    $res //= {};
    my ($line, $headers);
    do {
        ($line, $headers) = $self->_read_head
            or die "connection closed before a response\n";
        ($res->{status}) = $line =~ m{^HTTP/\d\.\d (\d{3})}
            or die "bad status line: $line\n";
    } while ($res->{status} =~ /^1/);
    $res->{headers} = $headers;
    $res->{body}    = '';
    return $res if $method eq 'HEAD' || $res->{status} =~ /^(?:204|304)$/;
    $self->_read_body($headers, 1, \$res->{body});
    return $res;
}

# Reads more bytes into the buffer.  Returns the count, 0 at end of stream.
sub _fill {
    my ($self) = @_;
    my $sel = IO::Select->new($self->{sock});
    # can_read also returns nothing when a signal interrupts it: re-check the
    # clock.  A TLS socket (IO::Socket::SSL) may hold bytes it has read from
    # the socket already, which select() cannot see.
    until (_pending($self->{sock}) || $sel->can_read(_max(0, $self->{deadline} - time))) {
        die "timeout\n" if time >= $self->{deadline};
    }
    my $n = sysread($self->{sock}, my $data, 65536);
    if (!defined $n) {
        return $self->_fill if $! == EINTR;
        return 0 if $! == ECONNRESET;
        die "read error: $!\n";
    }
    $self->{buf} .= $data;
    $self->{raw} .= $data if $self->{keep_raw};
    return $n;
}

sub _pending {
    my ($sock) = @_;
    return $sock->can('pending') && $sock->pending;
}

sub _take {
    my ($self, $n) = @_;
    return substr($self->{buf}, 0, $n, '');
}

# Returns (start line, headers hashref with lower-case names, repeated headers
# joined with ", "), or an empty list on a clean end of stream.
sub _read_head {
    my ($self) = @_;
    my $end;
    until (($end = index($self->{buf}, "\r\n\r\n")) >= 0) {
        next if $self->_fill;
        return if $self->{buf} eq '';
        die "connection closed inside the header\n";
    }
    my ($start, @lines) = split /\r\n/, $self->_take($end + 4);
    my %headers;
    for (@lines) {
        my ($name, $value) = /^([^:\s]+):[ \t]*(.*?)[ \t]*$/ or next;
        $name = lc $name;
        $headers{$name} = defined $headers{$name} ? "$headers{$name}, $value" : $value;
    }
    return ($start, \%headers);
}

sub _line {
    my ($self) = @_;
    my $end;
    until (($end = index($self->{buf}, "\r\n")) >= 0) {
        $self->_fill or die "connection closed inside a chunked body\n";
    }
    my $line = $self->_take($end + 2);
    return substr($line, 0, -2);
}

sub _exact {
    my ($self, $n) = @_;
    while (length $self->{buf} < $n) {
        $self->_fill or die "connection closed inside a chunked body\n";
    }
    return $self->_take($n);
}

sub _has_body {
    my ($headers) = @_;
    return ($headers->{'transfer-encoding'} // '') =~ /chunked/i
        || ($headers->{'content-length'} // 0) > 0;
}

# Appends the body framed by $headers to $$out as it arrives.  Without length or
# chunking, a response body runs to the end of the stream, a request has none.
sub _read_body {
    my ($self, $headers, $until_eof, $out) = @_;
    if (($headers->{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my ($size) = $self->_line =~ /^([0-9a-fA-F]+)/
                or die "bad chunk size line\n";
            last if hex($size) == 0;
            $$out .= $self->_exact(hex $size);
            $self->_exact(2);
        }
        1 while $self->_line ne '';    # trailer fields, then the empty line
    }
    elsif (defined(my $length = $headers->{'content-length'})) {
        while (length $self->{buf} < $length) {
            next if $self->_fill;
            $$out .= $self->_take(length $self->{buf});
            die sprintf "connection closed after %d of %d body bytes\n",
                length $$out, $length;
        }
        $$out .= $self->_take($length);
    }
    elsif ($until_eof) {
        1 while $self->_fill;
        $$out .= $self->_take(length $self->{buf});
    }
}

sub write_all {
    my ($sock, $data) = @_;
    while (length $data) {
        my $n = syswrite($sock, $data);
        if (!defined $n) {
            next if $! == EINTR;
            die "write error: $!\n";
        }
        substr($data, 0, $n, '');
    }
}

sub format_headers {
    my (@pairs) = @_;
    my $text = '';
    while (my ($name, $value) = splice @pairs, 0, 2) {
        $text .= "$name: $value\r\n";
    }
    return $text;
}

# Lower-cased names of the header pairs in @pairs, as a set.
sub header_names {
    my (@pairs) = @_;
    return { map { lc $pairs[$_] => 1 } grep { $_ % 2 == 0 } 0 .. $#pairs };
}

# Decoded query arguments; like nginx's $arg_NAME, the first of repeated names wins.
sub parse_query {
    my ($query) = @_;
    my %args;
    for my $pair (split /&/, $query) {
        my ($name, $value) = map { url_decode($_) } split /=/, $pair, 2;
        $args{$name} //= $value // '';
    }
    return \%args;
}

sub url_decode {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# Deterministic gzip (no name, mtime 0), so tests can predict the exact bytes.
sub gzip {
    my ($data) = @_;
    IO::Compress::Gzip::gzip(\$data => \my $out, Minimal => 1)
        or die "gzip failed: $IO::Compress::Gzip::GzipError\n";
    return $out;
}

sub _max { $_[0] > $_[1] ? $_[0] : $_[1] }

1;
