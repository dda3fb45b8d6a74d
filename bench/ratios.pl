#!/usr/bin/perl
# Reads the table ../shared/bench-peers/run.sh prints (one line a variant:
# name rps=.. p99=.. requests=.. callbacks_received=..) and prints it again
# with the ratios the targets are about, plain and TLS, each measured in
# the same run.

use strict;
use warnings;

my %v;
while (my $line = <STDIN>) {
    print $line;
    my ($name) = $line =~ /^(\w+)\s+rps=/ or next;
    my %f = $line =~ /(\w+)=(\S+)/g;
    $f{p99_ms} = ms($f{p99});
    $v{$name} = \%f;
}

sub ms {
    my ($t) = @_;
    return undef unless defined $t && $t =~ /^([\d.]+)(us|ms|s)$/;
    return $1 / 1000 if $2 eq 'us';
    return $1 * 1000 if $2 eq 's';
    return $1;
}

for my $need (qw(plain mirror lua mirror_tls lua_tls module module_tls
                 nomatch))
{
    die "bench: no '$need' line: the run failed\n" unless $v{$need};
}

# the better of two peers, by throughput, and the better p99 of the two
sub best {
    my ($x, $y) = @_;
    my ($best) = sort { $v{$b}{rps} <=> $v{$a}{rps} } $x, $y;
    my $p99 = $v{$x}{p99_ms} > $v{$y}{p99_ms} ? $v{$y}{p99_ms}
                                              : $v{$x}{p99_ms};
    return ($best, $p99);
}

sub target {
    my ($what, $shown, $target, $met) = @_;
    printf "%-58s %9s  target %-9s %s\n", $what, $shown, $target,
        $met ? 'met' : 'NOT met';
}

print "\n";

for my $tls ('', '_tls') {
    my ($best, $p99) = best("mirror$tls", "lua$tls");
    my $module = $v{"module$tls"};
    my $r = $module->{rps} / $v{$best}{rps};
    my $lost = $module->{requests} + 1 - $module->{callbacks_received};

    target("module$tls rps / best of mirror$tls, lua$tls ($best)",
           sprintf('%.2fx', $r), '>= 1.00x', $r >= 1);
    target("module$tls client p99 / the better peer's",
           sprintf('%.2fms', $module->{p99_ms}), sprintf('<= %.2fms', $p99),
           $module->{p99_ms} <= $p99);
    target("module$tls checkouts without a callback received",
           $lost > 0 ? $lost : 0, '0', $lost <= 0);
}

my $r_nomatch = $v{nomatch}{rps} / $v{plain}{rps};
target('nomatch rps / plain', sprintf('%.2fx', $r_nomatch), '>= 0.97x',
       $r_nomatch >= 0.97);
