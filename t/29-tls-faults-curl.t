# t/29-tls-faults.t with its receivers named localhost, not given as
# 127.0.0.1: libcurl sends to them instead of nginx's own connections, so
# the TLS fault suite runs once per engine.

use strict;
use warnings;

use FindBin;

$ENV{PB_RECEIVER_HOST} = 'localhost';

do "$FindBin::Bin/29-tls-faults.t" or die $@ || "t/29-tls-faults.t: $!\n";
