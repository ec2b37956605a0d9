# Owlery: a message left Junk for another folder: it was not spam after all, teach it as ham
# (SpamAssassin relearns a message it knew as spam). Moving spam to Trash is deleting it, not
# saying it is wanted: no lesson then. Run by imapsieve (90-owlery-imapsieve.conf).
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.mailbox" "*" {
  set "destination" "${1}";
}
if string :is "${destination}" ["Trash", "Deleted Items", "Deleted Messages"] {
  stop;
}
if environment :matches "imap.user" "*" {
  set "user" "${1}";
}

pipe :copy "owlery-learn" ["ham", "${user}"];
