# Owlery: a message arrived in Junk (moved, copied or uploaded): teach it as spam to the
# Bayes database of the mailbox it belongs to. Run by imapsieve (90-owlery-imapsieve.conf).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.user" "*" {
  set "user" "${1}";
}

pipe :copy "owlery-learn" ["spam", "${user}"];
