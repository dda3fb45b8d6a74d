# t/03-wire.t with its receivers named localhost, not given as 127.0.0.1:
# libcurl sends instead of nginx's own connections, so that the wire format are
# checked once per engine.

use strict;
use warnings;

use FindBin;

$ENV{PB_RECEIVER_HOST} = 'localhost';

do "$FindBin::Bin/03-wire.t" or die $@ || "t/03-wire.t: $!\n";
