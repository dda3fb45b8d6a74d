# contrib/grafana-dashboard.json against the module's exposition: every
# metric its queries (panels and variables) name is one the module exports
# (a histogram's as NAME_bucket, as PromQL reads it), with the labels its
# selectors match on and the label values they compare with; every query
# is PromQL that promtool reads; the dashboard is one Grafana imports (a
# Prometheus data source variable, unique panel ids, on a 24-column grid)
# and shows what it is for: deliveries, failures, the backlog, p50/p99 of
# both histograms, disabled callbacks, the spool.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use PBTest;

my $t = PBTest->new;
my $file = $t->repo . '/contrib/grafana-dashboard.json';

my $dash = eval {
    open my $fh, '<:raw', $file or die "$file: $!\n";
    local $/;
    JSON::PP->new->utf8->decode(<$fh>);
};
ok $dash, 'the dashboard is JSON' or diag $@;
$dash //= {};

# ---------------------------------------------------------------- queries

# every PromQL text: the panels' targets (rows nest panels), the variables'
my (@exprs, @panels);
sub panels {
    for my $p (@_) {
        push @panels, $p;
        push @exprs, map { $_->{expr} // () } @{ $p->{targets} // [] };
        panels(@{ $p->{panels} // [] });
    }
}
panels(@{ $dash->{panels} // [] });
my @vars = @{ $dash->{templating}{list} // [] };
push @exprs, map { ref $_->{query} ? $_->{query}{query} : $_->{query} }
             grep { $_->{type} eq 'query' } @vars;
ok @exprs > 20, scalar(@exprs) . ' queries';

# ---------------------------------------------------------------- the module

$t->receiver('ok');
$t->receiver(down => status => 503);

# with a spool: its metrics are exported only then
mkdir $t->dir . '/spool' or die "mkdir: $!";
chmod 0777, $t->dir . '/spool' or die "chmod: $!";
$t->nginx_conf($t->checkout_conf(
    zone => 'pb:1m spool=' . $t->dir . '/spool/postback.journal',
    callbacks => <<'EOF'));
            postback_callback ok url=http://127.0.0.1:%%PORT_ok%%/;
            postback_callback down url=http://127.0.0.1:%%PORT_down%%/
                attempts=1;
EOF
$t->start;

my $r = $t->get('/status/?format=prometheus');
is $r->{status}, 200, 'the exposition';

# sample name => label => value => 1
my %exposed;
for (split /\n/, $r->{body} // '') {
    next if /^#/ || !/\S/;
    my ($name, $labels) = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/
        or die "not a sample: $_\n";
    $exposed{$name} //= {};
    $exposed{$name}{$1}{$2} = 1 while ($labels // '') =~ /(\w+)="([^"]*)"/g;
}
ok exists $exposed{postback_delivered_total}, 'postback_delivered_total in it';
ok exists $exposed{postback_spool_unwritten}, '... and the spool\'s metrics';

# ---------------------------------------------------------------- names

# the labels Prometheus adds to what it scrapes
my %target_label = (instance => 1, job => 1);

my %used;
for my $expr (@exprs) {
    while ($expr =~ /\b(postback_[a-z0-9_]+)(?:\{([^}]*)\})?/g) {
        my ($name, $selector) = ($1, $2 // '');
        $used{$name} = 1;
        unless (exists $exposed{$name}) {
            fail "$name exists in the exposition";
            diag "in: $expr";
            next;
        }
        while ($selector =~ /(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g) {
            my ($label, $op, $value) = ($1, $2, $3);
            next if $target_label{$label};
            ok exists $exposed{$name}{$label}, "$name has label $label"
                or diag "in: $expr";
            # a literal compared with: one of the values the module gives
            next if $op =~ /~/ || $value =~ /\$/;
            ok $exposed{$name}{$label}{$value},
                qq{$name has $label="$value"} or diag "in: $expr";
        }
    }
}
ok $used{$_}, "the dashboard shows $_" for qw(
    postback_delivered_total postback_failed_total postback_attempts_total
    postback_pending postback_paused postback_disabled
    postback_delivery_duration_seconds_bucket
    postback_attempt_duration_seconds_bucket
    postback_spool_unwritten postback_spool_lost_total);

for my $h (qw(postback_delivery_duration_seconds
              postback_attempt_duration_seconds))
{
    for my $q (qw(0.5 0.99)) {
        ok scalar(grep { /histogram_quantile\(\Q$q\E, .*\b${h}_bucket\b/ }
                       @exprs), "$h: its p" . ($q * 100);
    }
}

# ---------------------------------------------------------------- PromQL

# each query as a recording rule, Grafana's variables given values
my $promtool = $ENV{PB_PROMTOOL}
               // PBTest->repo . '/build/tools/usr/bin/promtool';
SKIP: {
    skip "no promtool at $promtool (make test fetches it)", 1
        unless -x $promtool;
    my $i = 0;
    my @rules = map {
        my $e = $_;
        # a variable's label_values(SELECTOR, LABEL) is Grafana's, around
        $e =~ s/^label_values\((.*),\s*\w+\)$/$1/;
        $e =~ s/\$__(?:rate_interval|interval|range)\b/5m/g;
        $e =~ s/\$\w+/.*/g;
        { record => 'dashboard:query_' . ++$i, expr => $e };
    } @exprs;
    my $rules = $t->dir . '/dashboard-rules.yml';
    $t->write_file('dashboard-rules.yml', JSON::PP->new->canonical->encode(
        { groups => [{ name => 'dashboard', rules => \@rules }] }));
    my $out = `'$promtool' check rules '$rules' 2>&1`;
    is $?, 0, 'promtool reads every query' or diag $out;
}

# ---------------------------------------------------------------- Grafana

cmp_ok $dash->{schemaVersion} // 0, '>=', 36, 'a current schema version';
ok $dash->{uid} && $dash->{title}, 'a uid and a title';
my ($ds) = grep { $_->{type} eq 'datasource' } @vars;
is $ds && $ds->{query}, 'prometheus', 'a Prometheus data source variable';
my $ds_ref = $ds ? '${' . $ds->{name} . '}' : 'none';
my @targets = map { @{ $_->{targets} // [] } } @panels;
is scalar(grep { ($_->{datasource}{uid} // '') ne $ds_ref }
           @targets, grep { $_->{type} ne 'row' } @panels), 0,
    "panels and queries use it ($ds_ref)";
my %ids;
$ids{ $_->{id} // 'none' }++ for @panels;
is scalar(grep { $ids{$_} > 1 || $_ eq 'none' } keys %ids), 0,
    'panel ids unique';
is scalar(grep { my $g = $_->{gridPos} // {};
                 !defined $g->{w} || $g->{x} + $g->{w} > 24 } @panels), 0,
    'panels on the 24-column grid';
ok scalar(grep { $_->{title} =~ /disabled/i } @panels),
    'a panel of disabled callbacks';

$t->stop;
done_testing;
