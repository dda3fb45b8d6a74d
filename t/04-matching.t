# Matching: which callbacks an event goes to.
#
# - events= lists (several names), events=*, case-insensitive names on both
#   sides, no prefix or substring matches; an event no callback wants gives
#   no delivery and counts "no_match" (also when if= turns the only
#   candidate down).
# - if= with a map (product segmentation, as in conf.d/postback.conf) for
#   products 1234 and 999; if= empty or "0" skips the callback, any other
#   value lets it through.
# - one event fans out to several callbacks: 3 callbacks, 3 receivers, one
#   request each.
# - callbacks of the http level are inherited; a server or location that
#   defines its own replaces them (as add_header does).
# - postback_event from a map of raw statuses: mapped statuses give events,
#   unknown ones map to "" and give no event ("no_event").

use strict;
use warnings;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use PBTest qw(url);

my $JSON = JSON::PP->new->utf8->canonical;

my $t = PBTest->new;

# The upstream answers a purchase document shaped by the query: ev= an
# explicit event name, raw= a raw platform status (documents carry one or
# the other), product=, tx= (a transaction id, unique per test case).
$t->upstream(app => sub {
    my ($req) = @_;
    my $a = $req->{args};
    my $doc = {
        data => {
            purchase => { transaction => $a->{tx} // 'none' },
            product  => { id => ($a->{product} // 1234) + 0 },
        },
    };
    $doc->{event} = $a->{ev} if defined $a->{ev};
    $doc->{data}{purchase}{status} = $a->{raw} if defined $a->{raw};
    return { headers => [ 'Content-Type' => 'application/json' ],
             body => $JSON->encode($doc) };
});

# One receiver for most callbacks (told apart by path), and three more for
# the fan-out.
$t->receiver($_) for qw(hook fan1 fan2 fan3 short);

$t->nginx_conf($t->module_conf(<<"EOF"));
    postback_zone pb:1m;

    postback_field ev          \$.event;
    postback_field status      \$.data.purchase.status;
    postback_field transaction \$.data.purchase.transaction;
    postback_field product     \$.data.product.id;

    # Raw platform statuses to event names; any other status, no event.
    map \$postback_status \$status_event {
        approved  PURCHASE_APPROVED;
        refunded  PURCHASE_REFUNDED;
        default   "";
    }

    # A document has an explicit event or a raw status, never both.
    postback_event \$postback_ev\$status_event;

    # Segmentation: only product 1234 goes to the members area.
    map \$postback_product \$to_members {
        1234     1;
        default  0;
    }

    # Inherited by every server and location without callbacks of its own.
    postback_callback inherited url=http://127.0.0.1:%%PORT_hook%%/inherited events=*;

    upstream app {
        server 127.0.0.1:%%PORT_app%%;
        keepalive 4;
    }

    server {
        listen 127.0.0.1:%%PORT_front%%;

        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /inherit/ {
            postback on;
            proxy_pass http://app;
        }

        location /own/ {
            postback on;
            proxy_pass http://app;
            postback_callback own url=http://127.0.0.1:%%PORT_hook%%/own events=*;
        }

        location /m/ {
            postback on;
            proxy_pass http://app;
            postback_callback list url=http://127.0.0.1:%%PORT_hook%%/list
                events=SALE,REFUND,CHARGEBACK;
            postback_callback star url=http://127.0.0.1:%%PORT_hook%%/star events=*;
            # names in mixed case in the configuration
            postback_callback mixed url=http://127.0.0.1:%%PORT_hook%%/mixed
                events=Purchase_Approved,sale;
            postback_callback members url=http://127.0.0.1:%%PORT_hook%%/members
                events=SALE,PURCHASE_APPROVED if=\$to_members;
            postback_callback flag url=http://127.0.0.1:%%PORT_hook%%/flag
                events=* if=\$arg_flag;
        }

        location /nm/ {
            postback on;
            proxy_pass http://app;
            postback_callback only_sale url=http://127.0.0.1:%%PORT_hook%%/only_sale
                events=SALE;
            postback_callback nm_flag url=http://127.0.0.1:%%PORT_hook%%/nm_flag
                events=OTHER2 if=\$arg_flag;
        }

        location /fan/ {
            postback on;
            proxy_pass http://app;
            postback_callback f1 url=http://127.0.0.1:%%PORT_fan1%%/fanout events=SALE;
            postback_callback f2 url=http://127.0.0.1:%%PORT_fan2%%/fanout events=*;
            postback_callback f3 url=http://127.0.0.1:%%PORT_fan3%%/fanout
                events=REFUND,SALE method=get param=tx=\$postback_transaction;
        }

        # urls of under 25 bytes (and no header= or auth=)
        location /short/ {
            postback on;
            proxy_pass http://app;
            postback_callback short url=http://127.0.0.1:%%PORT_short%%/ events=*;
            postback_callback short2 url=http://127.0.0.1:%%PORT_short%%/x events=*;
        }

        location = /pbstatus {
            postback_status;
        }
    }

    # A server with callbacks of its own: they replace the http level's,
    # and its locations inherit them.
    server {
        listen 127.0.0.1:%%PORT_front2%%;

        postback_callback srv url=http://127.0.0.1:%%PORT_hook%%/srv events=*;

        location /inherit/ {
            postback on;
            proxy_pass http://app;
        }
    }
EOF
$t->start;

# ---------------------------------------------------------------- helpers

# Runs $code; returns the capture counters that moved.
sub counted { ($t->counted('/pbstatus', @_))[1] }

# What a callback request says: transaction and event.
sub record_info {
    my ($rec) = @_;
    return { tx => $rec->{args}{tx} // '', event => undef } if $rec->{method} eq 'GET';
    my $body = eval { $JSON->decode($rec->{body}) } // {};
    return { tx => $body->{fields}{transaction} // '', event => $body->{event},
             callback => $body->{callback} };
}

# ---------------------------------------------------------------- requests

# Each case: location, query (tx= is added), the hook paths (= callbacks)
# that must get exactly one request for it, the event they must carry, the
# counters the response moves besides "examined" (default: events => 1),
# and the port (default: front).
my @cases = (
    # events= lists; names compared case-insensitively, whole names only
    [ '/m/', { ev => 'SALE', product => 1234 }, [qw(list star mixed members)], 'SALE' ],
    [ '/m/', { ev => 'sale', product => 999 }, [qw(list star mixed)], 'sale' ],
    [ '/m/', { ev => 'ReFuNd', product => 1234 }, [qw(list star)], 'ReFuNd' ],
    [ '/m/', { ev => 'CHARGEBACK', product => 1234 }, [qw(list star)], 'CHARGEBACK' ],
    [ '/m/', { ev => 'OTHER', product => 1234 }, [qw(star)], 'OTHER' ],
    [ '/m/', { ev => 'SAL', product => 1234 }, [qw(star)], 'SAL' ],
    [ '/m/', { ev => 'SALES', product => 1234 }, [qw(star)], 'SALES' ],
    [ '/m/', { ev => 'SALE,REFUND', product => 1234 }, [qw(star)], 'SALE,REFUND' ],
    # raw statuses mapped to events; members only for product 1234
    [ '/m/', { raw => 'approved', product => 1234 }, [qw(star mixed members)], 'PURCHASE_APPROVED' ],
    [ '/m/', { raw => 'approved', product => 999 }, [qw(star mixed)], 'PURCHASE_APPROVED' ],
    [ '/m/', { raw => 'refunded', product => 1234 }, [qw(star)], 'PURCHASE_REFUNDED' ],
    # if=$arg_flag: empty and "0" skip, anything else passes
    [ '/m/', { ev => 'OTHER', flag => 1 }, [qw(star flag)], 'OTHER' ],
    [ '/m/', { ev => 'OTHER', flag => 'yes' }, [qw(star flag)], 'OTHER' ],
    [ '/m/', { ev => 'OTHER', flag => '00' }, [qw(star flag)], 'OTHER' ],
    [ '/m/', { ev => 'OTHER', flag => 0 }, [qw(star)], 'OTHER' ],
    [ '/m/', { ev => 'OTHER', flag => '' }, [qw(star)], 'OTHER' ],
    [ '/m/', { ev => 'SALE', product => 1234, flag => 1 },
      [qw(list star mixed members flag)], 'SALE' ],
    # a raw status the map does not know: no event at all
    [ '/m/', { raw => 'waiting_payment', product => 1234 }, [], undef, { no_event => 1 } ],
    # no callback wants the event, or if= turns the only candidate down
    [ '/nm/', { ev => 'SALE' }, [qw(only_sale)], 'SALE' ],
    [ '/nm/', { ev => 'OTHER' }, [], undef, { events => 1, no_match => 1 } ],
    [ '/nm/', { ev => 'OTHER2' }, [], undef, { events => 1, no_match => 1 } ],
    [ '/nm/', { ev => 'OTHER2', flag => 1 }, [qw(nm_flag)], 'OTHER2' ],
    # inheritance
    [ '/inherit/', { ev => 'SALE' }, [qw(inherited)], 'SALE' ],
    [ '/own/', { ev => 'SALE' }, [qw(own)], 'SALE' ],
    [ '/inherit/', { ev => 'SALE' }, [qw(srv)], 'SALE', undef, 'front2' ],
);

sub case_name {
    my ($case) = @_;
    my ($loc, $args) = @$case;
    return "$args->{tx} $loc " . join ' ', map { "$_=$args->{$_}" }
                                           grep { $_ ne 'tx' } sort keys %$args;
}

my %expect;    # hook path => number of requests expected
my $n = 0;
for my $case (@cases) {
    my ($loc, $args, $paths, $event, $counts, $port) = @$case;
    $args->{tx} = sprintf 'T%02d', ++$n;
    my $name = case_name($case);
    my $delta = counted(sub {
        my $r = $t->get(url("${loc}buy", %$args), port => $port // 'front');
        is $r->{status}, 200, "$name: status";
    });
    my $want = { examined => 1, %{ $counts // { events => 1 } } };
    is_deeply $delta, $want, "$name: counters";
    $expect{$_}++ for @$paths;
}

# The fan-out: one event, three callbacks on three receivers.
my $fan_tx = 'T-fan';
$t->get(url('/fan/buy', ev => 'SALE', tx => $fan_tx));

# ---------------------------------------------------------------- deliveries

my $total = 0;
$total += $_ for values %expect;
$t->wait_received(hook => $total, 10);
$t->wait_received($_ => 1, 5) for qw(fan1 fan2 fan3);
# Anything that should not have come would have come by now: the cases above
# were captured before the last expected delivery was queued.
sleep 0.5;
my @hooks = @{ $t->received('hook') };

subtest 'deliveries per case' => sub {
    for my $case (@cases) {
        my ($loc, $args, $paths, $event) = @$case;
        my $tx = $args->{tx};
        my $name = case_name($case);
        my @got = grep { record_info($_)->{tx} eq $tx } @hooks;
        is_deeply [ sort map { substr $_->{path}, 1 } @got ], [ sort @$paths ],
            "$name: delivered to exactly @{[ join(', ', @$paths) || 'none' ]}";
        for my $rec (@got) {
            my $info = record_info($rec);
            is $info->{event}, $event, "$name: $rec->{path} got event $event";
            is $info->{callback}, substr($rec->{path}, 1), "$name: $rec->{path} callback name";
        }
    }
    is scalar @hooks, $total, "no other requests on the hook receiver ($total)";
};

subtest 'fan-out: one event, three callbacks, three receivers' => sub {
    my %ids;
    for my $i (1 .. 3) {
        my $recs = $t->received("fan$i");
        is scalar @$recs, 1, "fan$i got exactly one request";
        my $rec = $recs->[0] or next;
        is record_info($rec)->{tx}, $fan_tx, "fan$i: for the right transaction";
        $ids{ $rec->{headers}{'webhook-id'} // '' }++;
        if ($i == 3) {
            is $rec->{method}, 'GET', 'f3 is method=get';
        }
        else {
            is record_info($rec)->{callback}, "f$i", "fan$i: callback f$i";
            is record_info($rec)->{event}, 'SALE', "fan$i: event";
        }
    }
    is scalar(grep { /^msg_/ } keys %ids), 3, 'each delivery has its own webhook-id';

    # the status page agrees, once the three are finished
    my ($by_name, $deadline) = ({}, time + 5);
    while (1) {
        my $st = $JSON->decode($t->get('/pbstatus')->{body});
        $by_name = { map { $_->{name} => $_ } @{ $st->{callbacks} } };
        last if 3 == grep { ($by_name->{$_}{delivered} // 0) >= 1 } qw(f1 f2 f3);
        last if time > $deadline;
        sleep 0.05;
    }
    for my $name (qw(f1 f2 f3)) {
        is $by_name->{$name}{delivered}, 1, "status: $name delivered 1";
        is $by_name->{$name}{failed}, 0, "status: $name failed 0";
    }
};

# Last, as it may take a worker down: callbacks whose url (and header lines,
# and auth) are shorter than their "webhook-id: msg_..." header line.  A
# heap overflow there does not always crash a normal build; an ASan build
# of the module always reports it.
subtest 'a short callback url' => sub {
    my @workers = $t->worker_pids;
    for my $i (1 .. 3) {
        my $r = $t->get(url('/short/buy', ev => 'SALE', tx => "T-short$i"));
        is $r->{status}, 200, "request $i: status";
    }
    my $recs = $t->wait_received(short => 6, 3);
    is scalar @$recs, 6, 'delivered';
    like $recs->[0]{headers}{'webhook-id'} // '', qr/^msg_[0-9a-f]{24}$/, 'webhook-id';
    is $t->get('/pbstatus?limit=0')->{status}, 200, 'nginx still answers';
    is_deeply [ $t->worker_pids ], \@workers, 'no worker died';
};

$t->stop;
done_testing;
