require ["vacation", "vacation-seconds", "date", "relational", "variables"];
if currentdate :value "ge" "date" "2026-03-01" {
    if date :zone "+0100" "date" "weekday" ["0", "6"] {
        vacation :seconds 3600 :subject "Away: ${subject}" :addresses ["bob@example.test"]
            :from "bob@example.test" :handle "weekend" text:
I am away this weekend.
..
.
;
    }
}
