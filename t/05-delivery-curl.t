# t/05-delivery.t with its plain http:// receivers named localhost, not
# given as 127.0.0.1: libcurl sends to them instead of nginx's own
# connections, so the delivery suite runs once per engine.

use strict;
use warnings;

use FindBin;

$ENV{PB_RECEIVER_HOST} = 'localhost';

do "$FindBin::Bin/05-delivery.t" or die $@ || "t/05-delivery.t: $!\n";
