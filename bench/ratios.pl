#!/usr/bin/perl
# Reads the table ../shared/bench-peers/run.sh prints (one line a variant:
# name rps=.. p99=.. requests=.. callbacks_received=..) and prints it again
# with the ratios the targets are about, each measured in the same run.

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

for my $need (qw(plain mirror lua module nomatch)) {
    die "bench: no '$need' line: the run failed\n" unless $v{$need};
}

my ($best) = sort { $v{$b}{rps} <=> $v{$a}{rps} } qw(mirror lua);
my $r_module = $v{module}{rps} / $v{$best}{rps};
my $r_nomatch = $v{nomatch}{rps} / $v{plain}{rps};
my $p99_peers = $v{mirror}{p99_ms} > $v{lua}{p99_ms}
                ? $v{lua}{p99_ms} : $v{mirror}{p99_ms};
my $lost = $v{module}{requests} + 1 - $v{module}{callbacks_received};

printf "\n%-44s %6.2fx  target >= 1.00x  %s\n",
    "module rps / best of mirror, lua ($best)", $r_module,
    $r_module >= 1 ? 'met' : 'NOT met';
printf "%-44s %6.2fx  target >= 0.97x  %s\n",
    'nomatch rps / plain', $r_nomatch, $r_nomatch >= 0.97 ? 'met' : 'NOT met';
printf "%-44s %6.2fms target <= %.2fms  %s\n",
    'module client p99 / the better peer', $v{module}{p99_ms}, $p99_peers,
    $v{module}{p99_ms} <= $p99_peers ? 'met' : 'NOT met';
printf "%-44s %6d   target 0  %s\n",
    'checkouts without a callback received', $lost > 0 ? $lost : 0,
    $lost <= 0 ? 'met' : 'NOT met';
