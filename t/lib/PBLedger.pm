package PBLedger;

# Helpers for the ledger and spool tests (t/17-spool-faults.t,
# t/18-reload-ledger.t, t/19-ledger-edges.t), beside the PBTest harness:
# the status answers read back, requests fired by many processes at once,
# a spool directory (plain or on a small tmpfs that can be filled up), a
# journal's identity, a reader that holds a FIFO open without reading it
# (a stalled disk), a reload that nginx refuses, a fast stop, and a
# worker's exit as the master logged it.
#
#   use PBLedger qw(status callback delivery);
#   my $t = PBTest->new;
#   my $journal = PBLedger::spool_dir($t) . '/postback.journal';
#   my $cb = callback($t, 'rcv');             # from GET /status/
#   my $run = PBLedger::spawn(20, sub { $t->get("/buy/x?tx=T$_[0]")->{status} });
#   my @statuses = $run->collect;
#
# Only core Perl.

use strict;
use warnings;

use Digest::MD5 ();
use Fcntl qw(O_RDONLY O_NONBLOCK);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use Exporter qw(import);

our @EXPORT_OK = qw(status callback delivery metrics spool tx_counts
                    checkout checkouts);

# what this process made (forked children inherit the hashes, not the duty)
my %MOUNTS;     # mount point => pid of the process that mounted it
my %READERS;    # FIFO reader pid => pid of the process that started it

# ---------------------------------------------------------------- status

# GET /status/ (limit=1000), decoded.  $path: the status location (/status/).
sub status {
    my ($t, $path) = @_;
    my $r = $t->get(($path // '/status/') . '?limit=1000');
    die "status: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    return JSON::PP->new->decode($r->{body});
}

# One callback's object of the status root, or undef.
sub callback {
    my ($t, $name) = @_;
    my ($cb) = grep { $_->{name} eq $name } @{ status($t)->{callbacks} };
    return $cb;
}

# The spool object of the status root: undef without one (or, before the
# rewrite, when the status does not have the member at all).
sub spool {
    my ($t) = @_;
    return status($t)->{spool};
}

# GET /status/deliveries/ID, decoded, or undef.
sub delivery {
    my ($t, $id) = @_;
    my $r = $t->get("/status/deliveries/$id");
    return ($r->{status} // 0) == 200 ? JSON::PP->new->decode($r->{body}) : undef;
}

# ?format=prometheus as { 'series{labels}' => value }.
sub metrics {
    my ($t) = @_;
    my $r = $t->get('/status/?format=prometheus');
    die "metrics: " . ($r->{status} // $r->{error}) . "\n"
        unless ($r->{status} // 0) == 200;
    my %m;
    for (split /\n/, $r->{body}) {
        next if /^#/ || !/\S/;
        my ($series, $value) = /^(\S+) (\S+)$/ or die "bad metrics line: $_\n";
        $m{$series} = $value;
    }
    return \%m;
}

# { tx => how many times it arrived } of the requests a receiver got (the
# default post_json body's fields.tx); with $re, only the tx matching it.
sub tx_counts {
    my ($t, $name, $re) = @_;
    my %tx;
    for my $req (@{ $t->received($name) }) {
        my $tx = eval { JSON::PP->new->decode($req->{body})->{fields}{tx} }
            // '(no tx)';
        $tx{$tx}++ if !$re || $tx =~ $re;
    }
    return \%tx;
}

# ---------------------------------------------------------------- checkouts

# The nginx.conf of $t->checkout_conf with one callback, "rcv", that keeps
# a delivery pending while its receiver is down (params => 'attempts=100
# retry=1s' unless given).  The document also carries "pad": the request's
# X-Pad header (see checkout), to make records of a chosen size.  zone =>,
# workers => as checkout_conf.
sub rcv_conf {
    my ($t, %o) = @_;
    my $params = $o{params} // 'attempts=100 retry=1s';
    return $t->checkout_conf(
        zone      => $o{zone},
        workers   => $o{workers},
        doc       => '{"status":"$arg_status","tx":"$arg_tx","pad":"$http_x_pad"}',
        callbacks => "            postback_callback rcv "
                   . "url=http://127.0.0.1:%%PORT_rcv%%/\n"
                   . "                $params;\n",
    );
}

# One checkout of event APPROVED and transaction $tx through /buy/ of
# rcv_conf; pad => N adds N bytes to its document, timeout => seconds.
sub checkout {
    my ($t, $tx, %o) = @_;
    return $t->get("/buy/x?status=APPROVED&tx=$tx",
                   headers => [ 'X-Pad' => 'x' x ($o{pad} // 0) ],
                   timeout => $o{timeout} // 10);
}

# One checkout per transaction of @$txs, one after the other: how many
# answered 200.  %o as checkout.
sub checkouts {
    my ($t, $txs, %o) = @_;
    return scalar grep { (checkout($t, $_, %o)->{status} // 0) == 200 } @$txs;
}

# ---------------------------------------------------------------- nginx

# A reload that nginx refuses: $bad (a configuration's text, as for
# $t->nginx_conf) gets one more listen, on a port this process holds, so
# nginx cannot bind it; SIGHUP, and the refusal is awaited to its end
# (nginx tries to bind for about 2.5 s, then logs "still could not
# bind()"), its [emerg] lines allowed in the error log.  Then $good (the
# text the running nginx was started or reloaded with) is put back as
# nginx.conf, as an operator would, for the next start or reload.  Dies
# when nginx took the configuration.
sub refused_reload {
    my ($t, $bad, $good) = @_;
    my $busy = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1,
    ) or die "cannot bind a port: $!\n";
    my $port = $busy->sockport;
    $bad =~ s/^([ \t]*)(listen[ \t]+[^;]*;)/$1$2\n$1listen 127.0.0.1:$port;/m
        or die "refused_reload: no listen line in the configuration\n";
    $t->allow_log(qr/bind\(\) to 127\.0\.0\.1:$port failed/);
    $t->allow_log(qr/still could not bind\(\)/);
    my $from = length $t->error_log;
    $t->nginx_conf($bad);
    my $took = eval { $t->reload; 1 };
    my $err = $@;
    $t->nginx_conf($good);
    die "refused_reload: nginx took the configuration\n" if $took;
    die $err unless $err =~ /refused the new config/;
    my $deadline = time + 10;
    until (substr($t->error_log, $from) =~ /still could not bind\(\)/) {
        die "refused_reload: nginx did not give up binding port $port "
            . "($err)" if time > $deadline;
        sleep 0.05;
    }
    close $busy;
}

# What `nginx -s stop` does: SIGTERM to the master (named by the pid
# file), a fast stop that does not wait for transfers.  Whether the master
# and the workers it had are gone within $timeout seconds (10).  $t->stop
# after it checks the error log.
sub fast_stop {
    my ($t, $timeout) = @_;
    my ($master) = (_slurp($t->dir . '/nginx.pid') // '') =~ /^(\d+)/
        or die "fast_stop: no pid file\n";
    my @pids = ($master, $t->worker_pids);
    kill 'TERM', $master or die "fast_stop: kill $master: $!\n";
    my $deadline = time + ($timeout // 10);
    while (grep { _running($_) } @pids) {
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# The master's error log line saying worker $pid exited (with a code or on
# a signal), or undef while it has not.
sub worker_exit {
    my ($t, $pid) = @_;
    my ($line) = $t->error_log =~ /^(.*\bworker process $pid exited .*)$/m;
    return $line;
}

sub _running {
    my ($pid) = @_;
    return 0 unless kill 0, $pid;
    my $stat = _slurp("/proc/$pid/stat") // return 0;
    return $stat !~ /^.*\)\s+Z/s;    # a zombie has ended
}

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar(<$fh>) // '';
}

# ---------------------------------------------------------------- processes

# Forks $n children that run $code->($i) (i from 1) together: each waits
# until every one is forked, so their requests start at the same moment.
# Returns a handle; $handle->collect waits for them and returns what each
# returned (one line of text), in the order of i.  A child that died
# returns "died: ...".  Children leave by _exit: no END block, no harness
# cleanup, no TAP from them.
sub spawn {
    my ($n, $code) = @_;
    pipe my $go_r, my $go_w or die "pipe: $!\n";
    my @kids;
    for my $i (1 .. $n) {
        pipe my $out_r, my $out_w or die "pipe: $!\n";
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            close $go_w;
            close $out_r;
            close $_->{fh} for @kids;
            # EOF once the parent closes its end: every child is forked
            sysread $go_r, my $x, 1;
            my $res = eval { $code->($i) } // "died: $@";
            $res =~ s/\n/ /g;
            syswrite $out_w, "$res\n";
            close $out_w;
            POSIX::_exit(0);
        }
        close $out_w;
        push @kids, { pid => $pid, fh => $out_r };
    }
    close $go_r;
    close $go_w;
    return bless { kids => \@kids }, 'PBLedger::Spawned';
}

sub PBLedger::Spawned::collect {
    my ($self) = @_;
    my @res;
    for my $kid (@{ $self->{kids} }) {
        my $fh = $kid->{fh};
        my $line = <$fh> // 'no answer';
        chomp $line;
        close $fh;
        waitpid $kid->{pid}, 0;
        push @res, $line;
    }
    $self->{kids} = [];
    return @res;
}

# ---------------------------------------------------------------- spool

# A directory for the spool under the test's dir, writable by the workers
# (they run as "nobody" when the tests run as root, and rewrite the journal
# next to itself).
sub spool_dir {
    my ($t, $name) = @_;
    my $dir = $t->dir . '/' . ($name // 'spool');
    mkdir $dir or die "mkdir $dir: $!\n";
    chmod 0777, $dir or die "chmod $dir: $!\n";
    return $dir;
}

# A journal's identity and content: { dev, ino, size, md5 }, or undef when
# it does not exist.
sub journal_state {
    my ($path) = @_;
    my @st = stat $path or return undef;
    open my $fh, '<', $path or die "$path: $!\n";
    binmode $fh;
    my $md5 = Digest::MD5->new->addfile($fh)->hexdigest;
    close $fh;
    return { dev => $st[0], ino => $st[1], size => $st[7], md5 => $md5 };
}

# A small tmpfs of $size (as mount's size=: "256k") on a directory of its
# own (outside the test's dir, whose removal it would otherwise be in the
# way of), mode 0777.  Returns a handle: ->dir, ->fill (a filler file takes
# every free block), ->unfill, ->unmount (also done by DESTROY and END,
# lazily, so that a process still holding a file there never keeps it).
sub tmpfs {
    my ($size) = @_;
    my $dir = File::Temp::tempdir('pbtmpfs-XXXXXX', TMPDIR => 1, CLEANUP => 0);
    system('mount', '-t', 'tmpfs', '-o', "size=$size,mode=0777", 'tmpfs', $dir) == 0
        or do { rmdir $dir; die "mount -t tmpfs on $dir failed\n" };
    $MOUNTS{$dir} = $$;
    return bless { dir => $dir }, 'PBLedger::Tmpfs';
}

sub PBLedger::Tmpfs::dir { $_[0]{dir} }

# Writes a filler file until the filesystem answers ENOSPC: no block is
# left.  Returns the bytes written.
sub PBLedger::Tmpfs::fill {
    my ($self) = @_;
    my $path = "$self->{dir}/filler";
    open my $fh, '>>', $path or die "$path: $!\n";
    binmode $fh;
    my $block = "\0" x 4096;
    my $total = 0;
    while (1) {
        my $n = syswrite $fh, $block;
        last unless defined $n && $n > 0;
        $total += $n;
    }
    die "filling $self->{dir}: $!\n" unless $!{ENOSPC};
    # a last partial block: one byte at a time to the very end
    while (defined(my $n = syswrite $fh, "\0")) { last unless $n; $total += $n }
    close $fh;
    return $total;
}

sub PBLedger::Tmpfs::unfill {
    my ($self) = @_;
    unlink "$self->{dir}/filler";
}

sub PBLedger::Tmpfs::unmount {
    my ($self) = @_;
    _unmount($self->{dir});
}

sub PBLedger::Tmpfs::DESTROY {
    local ($?, $@, $!);
    $_[0]->unmount;
}

sub _unmount {
    my ($dir) = @_;
    return unless ($MOUNTS{$dir} // 0) == $$;
    delete $MOUNTS{$dir};
    # lazy: nginx may still hold the journal open (a test that died midway)
    system('umount', '-l', $dir) == 0 or warn "umount -l $dir failed\n";
    rmdir $dir;
}

# A FIFO at $path (what was there is removed) with a reader process that
# holds it open for reading and does not read until ->drain: writers fill
# its buffer (64 KiB) and then block, as on a stalled disk.  ->drain makes
# it read and discard everything from then on; ->bytes is what it read so
# far; ->stop kills it (also done by DESTROY and END).
sub stalled_fifo {
    my ($path) = @_;
    unlink $path;
    POSIX::mkfifo($path, 0666) or die "mkfifo $path: $!\n";
    chmod 0666, $path or die "chmod $path: $!\n";
    my $count = "$path.read";
    unlink $count;
    my $parent = $$;
    pipe my $ready_r, my $ready_w or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        close $ready_r;
        my $drain = 0;
        local $SIG{USR1} = sub { $drain = 1 };
        # non-blocking: opening for reading does not wait for a writer
        sysopen my $fh, $path, O_RDONLY | O_NONBLOCK or POSIX::_exit(1);
        syswrite $ready_w, "ok\n";
        close $ready_w;
        my $read = 0;
        while (getppid() == $parent) {
            if (!$drain) { sleep 0.05; next }
            my $n = sysread $fh, my $buf, 65536;
            if ($n) {
                $read += $n;
                _write_count($count, $read);
            }
            else {
                # empty (EAGAIN) or no writer at the moment (0)
                IO::Select->new($fh)->can_read(0.05) if !defined $n;
                sleep 0.01 if defined $n;
            }
        }
        POSIX::_exit(0);
    }
    close $ready_w;
    my $ready = <$ready_r>;
    close $ready_r;
    die "the FIFO reader did not open $path\n" unless $ready;
    $READERS{$pid} = $$;
    return bless { pid => $pid, count => $count }, 'PBLedger::Fifo';
}

sub _write_count {
    my ($path, $n) = @_;
    open my $fh, '>', "$path.tmp" or return;
    print $fh $n;
    close $fh;
    rename "$path.tmp", $path;
}

sub PBLedger::Fifo::drain { kill 'USR1', $_[0]{pid} }

sub PBLedger::Fifo::bytes {
    my ($self) = @_;
    open my $fh, '<', $self->{count} or return 0;
    my $n = <$fh>;
    return $n // 0;
}

sub PBLedger::Fifo::stop {
    my ($self) = @_;
    return if ($READERS{ $self->{pid} } // 0) != $$;
    delete $READERS{ $self->{pid} };
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
}

sub PBLedger::Fifo::DESTROY {
    local ($?, $@, $!);
    $_[0]->stop;
}

# Whatever a test that died midway left: readers killed, tmpfs unmounted.
END {
    local $?;
    for my $pid (grep { $READERS{$_} == $$ } keys %READERS) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    %READERS = ();
    _unmount($_) for keys %MOUNTS;    # those of this process only
}

1;
