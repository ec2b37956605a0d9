require ["fileinto", "envelope", "subaddress", "mailbox"];
# route list mail by List-Id and detail
if header :contains "list-id" ["<dev.example.org>", "<ops.example.org>"] {
    fileinto :create "INBOX.lists";
    stop;
}
if envelope :detail "to" "spam" { fileinto "Junk"; }
elsif address :domain :is "from" "example.net" { keep; }
else { if exists ["x-spam-flag"] { discard; } }
