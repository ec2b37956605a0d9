require ["regex", "comparator-i;unicode-casemap"];
if header :comparator "i;unicode-casemap" :regex "subject" "x" { discard; }
