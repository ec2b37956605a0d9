require ["ihave", "fileinto"];
if ihave "variables" {
	set "x" "1";
}
fileinto "${x}";
