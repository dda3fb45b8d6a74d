package PBTest::DNS;

# The forked DNS servers behind $t->dns: UDP on 127.0.0.1, enough of RFC 1035
# for nginx's resolver.  A query for a name of the map gets its IPv4 address
# (A) or an empty NOERROR answer (AAAA, and any other type); a name not in
# the map gets NXDOMAIN.  A silent server records queries and answers none.
#
# The map is a JSON file ({"name": "address", ...}) read again for each
# query, so a test moves a name by rewriting it (set_map).  Every query is
# appended as one JSON line to a record file: name, type ("A", "AAAA" or
# the number), rcode (undef when silent), time.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Socket qw(inet_aton);
use Time::HiRes qw(time);

use PBTest::Server;

my $JSON = JSON::PP->new->utf8->canonical;

my %TYPE = (1 => 'A', 28 => 'AAAA');

my $TTL = 1;    # seconds: nginx's valid= overrides it anyway

# Starts a server; returns the acceptor's pid (also its process group id).
# %a: name, port, map (file path), record (file path), silent.
sub start {
    my (%a) = @_;
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $a{port},
        Proto     => 'udp',
    ) or die "dns '$a{name}': cannot bind udp 127.0.0.1:$a{port}: $!\n";
    my $owner = $$;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDOUT, '>', '/dev/null';
        eval { _serve($sock, $owner, \%a); 1 }
            or warn "PBTest dns '$a{name}': $@";
        POSIX::_exit(0);
    }
    POSIX::setpgid($pid, $pid);
    close $sock;
    return $pid;
}

# Writes the map a server reads at each query: name => IPv4 address.
# Renamed into place, so a query never sees half a file.
sub set_map {
    my ($path, $map) = @_;
    open my $fh, '>', "$path.new" or die "$path.new: $!\n";
    print $fh $JSON->encode({ map { lc($_) => $map->{$_} } keys %$map });
    close $fh or die "$path.new: $!\n";
    rename "$path.new", $path or die "rename $path: $!\n";
}

# All queries a server saw, in arrival order.
sub records {
    my ($path) = @_;
    return PBTest::Server::json_lines($path);
}

sub _serve {
    my ($sock, $owner, $a) = @_;
    my $sel = IO::Select->new($sock);
    # getppid changes when the test process dies without cleaning up.
    while (getppid() == $owner) {
        next unless $sel->can_read(0.5);
        my $peer = $sock->recv(my $query, 512) // next;
        my $q = _parse($query) or next;
        my $answer = $a->{silent} ? undef : _answer($q, _read_map($a->{map}));
        PBTest::Server::append_line($a->{record}, {
            name => $q->{name}, time => time,
            type => $TYPE{ $q->{type} } // $q->{type},
            rcode => $answer && $answer->{rcode} });
        send $sock, $answer->{bytes}, 0, $peer if $answer;
    }
}

# The header's id and flags, the first question: its name, type, and bytes.
sub _parse {
    my ($msg) = @_;
    return undef if length $msg < 12;
    my ($id, $flags, $qdcount) = unpack 'n n n', $msg;
    return undef if $flags & 0x8000 || $qdcount < 1;    # an answer, or empty
    my ($pos, @labels) = (12);
    while (1) {
        return undef if $pos >= length $msg;
        my $len = ord substr $msg, $pos++, 1;
        last if $len == 0;
        return undef if $len > 63 || $pos + $len > length $msg;
        push @labels, substr $msg, $pos, $len;
        $pos += $len;
    }
    return undef if $pos + 4 > length $msg;
    my ($type) = unpack 'n', substr $msg, $pos, 2;
    return { id => $id, rd => $flags & 0x0100, type => $type,
             name => lc join('.', @labels),
             question => substr($msg, 12, $pos + 4 - 12) };
}

sub _answer {
    my ($q, $map) = @_;
    my $address = $map->{ $q->{name} };
    my $rcode = defined $address ? 0 : 3;    # NXDOMAIN
    my @records;
    if (defined $address && $q->{type} == 1) {
        # the name as a pointer to the question's (offset 12)
        push @records, pack('n n n N n', 0xc00c, 1, 1, $TTL, 4)
                       . inet_aton($address);
    }
    # QR, AA, RA, and RD as asked
    my $flags = 0x8000 | 0x0400 | 0x0080 | $q->{rd} | $rcode;
    return { rcode => $rcode,
             bytes => pack('n6', $q->{id}, $flags, 1, scalar @records, 0, 0)
                      . $q->{question} . join '', @records };
}

sub _read_map {
    my ($path) = @_;
    open my $fh, '<', $path or return {};
    local $/;
    return eval { $JSON->decode(<$fh>) } // {};
}


1;
