# realprog_script.pl - perl: hashes (printed in sorted order), regexes,
# sprintf, pack/unpack, sort, string growth, references.
use strict;
use warnings;
my %h;
for my $i (0 .. 40000) {
    my $k = sprintf("k%04d", $i % 5000);
    push @{ $h{$k} }, $i * 3;
}
print scalar(keys %h), " keys\n";
for my $k ((sort keys %h)[0 .. 4]) { print "$k: ", scalar(@{ $h{$k} }), " ", $h{$k}[-1], "\n"; }
my $text = join(" ", map { "word$_" x (1 + $_ % 3) } 1 .. 20000);
my @m = ($text =~ /word(\d*7)\b/g);
print "matches: ", scalar(@m), " last: $m[-1]\n";
(my $t2 = $text) =~ s/word(\d+)/W$1/g;
print "len: ", length($text), " ", length($t2), "\n";
my $packed = pack("N*", 1 .. 5000);
my @un = unpack("N*", $packed);
my $sum = 0; $sum += $_ for @un;
print "pack: ", length($packed), " sum: $sum\n";
my @sorted = sort { $b->[1] <=> $a->[1] or $a->[0] cmp $b->[0] } map { [ "n$_", ($_ * 7919) % 1013 ] } 1 .. 30000;
print "top: @{$sorted[0]} @{$sorted[1]} bottom: @{$sorted[-1]}\n";
my $s = ""; $s .= chr(65 + $_ % 26) for 1 .. 100000;
print substr($s, 500, 30), "\n";
