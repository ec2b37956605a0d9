require ["reject", "enotify", "duplicate", "spamtest", "relational", "comparator-i;ascii-numeric", "ihave", "copy"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "8" { reject "no spam, please"; stop; }
if duplicate :header "message-id" :seconds 86400 { discard; stop; }
if ihave "enotify" { notify :importance "1" :message "new mail" "mailto:bob@example.test?subject=hi"; }
redirect :copy "archive@example.test";
if anyof (size :over 1M, not exists "date", allof (true, header :is "x" "")) { keep; }
