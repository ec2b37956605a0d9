require ["fileinto", "ereject"];
fileinto "INBOX.x";
ereject "no";
