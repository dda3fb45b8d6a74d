# t/11-signature.t with its receivers named localhost, not given as 127.0.0.1:
# libcurl sends instead of nginx's own connections, so that signatures are
# checked once per engine.

use strict;
use warnings;

use FindBin;

$ENV{PB_RECEIVER_HOST} = 'localhost';

do "$FindBin::Bin/11-signature.t" or die $@ || "t/11-signature.t: $!\n";
