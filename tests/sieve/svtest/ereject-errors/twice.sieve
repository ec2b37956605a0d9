require ["reject", "ereject"];
reject "a";
ereject "b";
